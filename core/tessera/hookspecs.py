"""Every hook a Tessera plugin may implement.

Hooks are synchronous and return *declarations* (table apps, controllers, job specs, JSON
schemas, templates). Where a hook must do async work it may return a coroutine, which the
kernel awaits (``tessera.plugins.await_me_maybe``). Each hook is documented with its exact
signature in ``docs/plugin_hooks.md``; a test keeps that page and this module in step.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("tessera")
hookimpl = pluggy.HookimplMarker("tessera")


# ---------------------------------------------------------------------------------------------
# Start-up: schema, routes, permissions
# ---------------------------------------------------------------------------------------------


@hookspec
def tessera_tables() -> Any:
    """Return the plugin's Piccolo ``AppConfig`` (tables and migrations folder).

    Called when the app registry is built (server start, ``tessera migrate``, tests). The
    kernel runs the app's migrations with ``tessera migrate``; table names carry the plugin's
    prefix (``sales_deal``). Return ``None`` when the plugin has no tables.
    """


@hookspec
def tessera_routes() -> list[Any]:
    """Return Litestar controllers, routers or route handlers of the plugin.

    Called once while the app is built. They are mounted under ``/api/<plugin name>/``; the
    kernel's authentication, error translation and OpenAPI apply to them.
    """


@hookspec
def tessera_permissions() -> dict[str, str]:
    """Return the permission names the plugin defines, mapped to a one-line description.

    Called when roles are validated and by ``GET /api/permissions``. Names are dotted and
    start with the plugin name: ``{"sales.deal.read": "Read deals"}``.
    """


@hookspec
def tessera_custom_field_targets() -> dict[str, dict[str, Any]]:
    """Return entity types that accept custom fields, each with the JSON-schema properties the
    plugin declares for it (may be empty: admins add theirs through the API).

    Example: ``{"party": {"loyalty_tier": {"type": "string", "enum": ["gold", "silver"]}}}``.
    Called when custom-field schemas are resolved; every write of that entity type is
    validated against the union of plugin and admin properties.
    """


@hookspec
def tessera_custom_field_values(entity_type: str, ids: list[int]) -> Any:
    """Return the values of the read-only custom fields the plugin keeps in its own tables, for
    the records ``ids`` of ``entity_type``: ``{id: {field: value}}`` (or a coroutine giving it),
    fetched in one query; ``{}`` for entity types the plugin does not extend.

    A field is read-only when the plugin declares it with ``"readOnly": true`` in
    ``tessera_custom_field_targets`` (the marketing plugin's ABC/XYZ class): its value lives in
    the plugin's table, not in the record's ``custom`` column, so the plugin can recompute it
    for a million records without rewriting them. The kernel merges the values into ``custom``
    wherever a record is read (the API, the card, other plugins through
    ``tessera.customfields.with_plugin_values``); writes that set such a field are refused.
    """


# ---------------------------------------------------------------------------------------------
# Running: jobs, events, workflow
# ---------------------------------------------------------------------------------------------


@hookspec
def tessera_jobs() -> list[Any]:
    """Return ``tessera.scheduler.JobSpec`` objects: scheduled work the worker runs.

    Called when the worker starts and by ``tessera migrate`` (which records the jobs so admins
    can enable/disable them). A job is ``async def job(ctx: JobContext)``, must be idempotent,
    and runs on exactly one node per due time.
    """


@hookspec
def tessera_background_jobs() -> dict[str, Any]:
    """Return the plugin's background job kinds: ``{kind: handler}``, where a handler is
    ``async def handler(ctx: tessera.jobs.JobContext, payload: dict)`` or a
    ``tessera.jobs.JobKind(handler, timeout=...)``.

    Called when a worker claims jobs (``tessera worker``). Code enqueues work with
    ``await tessera.jobs.enqueue(kind, payload)`` inside its unit of work; one worker runs each
    job, retrying a failure with back-off (``ctx.attempt`` says which attempt), so be
    idempotent. Kinds are dotted and start with the plugin name (``"loyalty.recalculate"``);
    a kind declared twice fails with a message naming the plugin.
    """


@hookspec
def tessera_on_event(event: Any) -> Any:
    """React to a domain event (``tessera.events.DomainEvent``) after its transaction committed.

    :param event: the event: ``name`` (``party.created``, ``task.overdue`` ...), ``entity``,
        ``entity_id``, ``payload`` and ``occurred_at``.

    Called once per delivery for every implementation; may return a coroutine. Delivery is
    at-least-once (an event whose delivery crashed is delivered again), so be idempotent.
    """


@hookspec
def tessera_inbound_email(message: Any) -> Any:
    """React to an incoming e-mail stored from an IMAP mailbox (``tessera.mail_in``): the seam
    where a service plugin turns messages to a support address into tickets and replies.

    :param message: a ``tessera.mail_in.InboundEmail`` (frozen dataclass): ``id``,
        ``mailbox`` and ``mailbox_role`` (``"support"`` ...), ``message_id``, ``thread_id``
        (the thread's first Message-ID: a reply carries its original's), ``in_reply_to``,
        ``references``, ``from_address``, ``from_name``, ``to``, ``cc``, ``subject``,
        ``text``, ``html`` (sanitised), ``sent_at``, ``received_at``, ``party_ids`` and
        ``contact_ids`` matched by address (empty: the sender waits in triage),
        ``activity_ids`` (the e-mail activities stored), ``attachments`` and ``raw_path`` (the
        stored raw message, for parsing more than the text: a delivery report, a complaint).

    Called once per stored message (deduplicated by Message-ID across polls and nodes), by a
    ``mail.inbound`` background job after the message committed; may return a coroutine. An
    implementation that raises makes the job retry with back-off, calling every
    implementation again: be idempotent (key on ``message.message_id``).
    """


@hookspec(firstresult=True)
def tessera_password_reset_link(user: dict[str, Any], token: str, expires_at: Any) -> Any:
    """Deliver a password reset token to a user who asked for one (``POST
    /api/auth/password-reset/request``) — the seam where e-mail delivery plugs in.

    :param user: ``id``, ``email`` and ``name`` of the (active) account.
    :param token: the single-use reset token (secret: send it to the user only); the user
        sends it with a new password to ``POST /api/auth/password-reset``.
    :param expires_at: when the token stops working (UTC).

    ``firstresult``: return ``True`` (or a coroutine resolving to it) once delivered. When no
    plugin delivers it, every administrator gets an inbox notification (without the token)
    asking them to create a reset token for the user and pass it on.
    """


@hookspec
def tessera_process_templates() -> list[dict[str, Any]]:
    """Return workflow process templates the plugin ships: JSON documents valid against the
    kernel's template schema (``tessera/workflow/template.schema.json``, see docs/workflow.md).

    Called once per process before the first template listing or instance start (and by
    ``tessera.workflow.templates.sync_plugin_templates``). A template is stored as a new
    version of its ``key`` only when its content changed; running instances keep their
    version. An invalid template fails with a message naming the plugin.
    """


@hookspec(firstresult=True)
def tessera_workflow_assignee(rule: str, args: dict[str, Any], instance: dict[str, Any]) -> Any:
    """Answer a stage's ``{"rule": ...}`` responsible/controller with a user id.

    :param rule: the rule name from the template (``"sales.round_robin"``); answer only your own.
    :param args: the rule's ``args`` object from the template (may be empty).
    :param instance: the process instance row (``owner_id``, ``party_id``, ``subject_entity``,
        ``subject_id``, ``params``, ``results`` ...).

    Called when an instance enters a stage whose rule is ``rule``. ``firstresult``: the first
    implementation returning something other than ``None`` wins; may return a coroutine
    resolving to the id. Nobody answering falls back to the record owner.
    """


@hookspec
def tessera_workflow_action(name: str, args: dict[str, Any], instance: dict[str, Any]) -> Any:
    """Perform a stage's ``{"type": "call_hook", "name": ...}`` action.

    :param name: the action name from the template (``"sales.recalculate_forecast"``).
    :param args: the action's ``args`` object from the template.
    :param instance: the process instance row.

    Called when the action is due (on stage entry/exit, or after its ``delay``), inside the
    transaction that marks it done; may return a coroutine. Return ``None`` for names that are
    not yours and anything else (``True``) when you handled it; when no plugin handles it the
    action fails and is retried. Raise to fail it (retried with back-off). Be idempotent.
    """


@hookspec
def tessera_cli_commands() -> Any:
    """Return the plugin's command group for the ``tessera`` command (a ``typer.Typer``), or
    ``None``. It is mounted as ``tessera <plugin name> ...`` (``tessera receivables import
    FILE``) unless a kernel command has that name.

    Called once when the command starts, for every *installed* plugin (the configuration is not
    read yet: ``--config`` comes after the sub-command). A command boots the kernel with
    ``tessera.cli_kernel.run_kernel`` and should refuse to run when its plugin is not enabled
    there. Import heavy modules inside the command, not in the hook.
    """


# ---------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------


@hookspec
def tessera_reports() -> list[Any]:
    """Return the plugin's reports as ``tessera.reports.Report`` declarations: parameters as JSON
    schema properties, ``Dimension`` (group-by: manager, team, period, type ...), ``Measure``
    (count, sum, avg, min, max, distinct count, optionally over a condition) and ``Ratio``
    columns with types and units, an optional chart kind.

    Called when reports are listed or run. The kernel builds each report's query with Piccolo
    from the declaration, adds the caller's visibility (the entity's, or the report's own
    ``visibility``) and drills down from any cell to its records; a report with its own
    ``run`` computes its rows itself (and may bring a ``drill``). Keys are dotted and start
    with the plugin name (``"sales.funnel"``); a key declared twice fails naming the plugin.
    """


# ---------------------------------------------------------------------------------------------
# Search
# ---------------------------------------------------------------------------------------------


@hookspec
def tessera_search_types() -> list[Any]:
    """Return the document types the plugin adds to full-text search, as
    ``tessera.search.documents.SearchType`` objects:
    ``SearchType("deal", "Deals", permission="sales.deal.read", entity="sales.deal", table=Deal)``.

    ``permission`` is what a user needs to see hits of the type; ``entity`` names the entity
    whose ``<entity>.created|updated|deleted`` events refresh the documents (default: the type
    name); ``table`` is the Piccolo table of its records, read when a record changes and by
    ``tessera search reindex``. Called once when the kernel boots (server, CLI, worker).
    A type name declared twice fails start-up with a message naming the plugin.
    """


@hookspec
def tessera_search_documents(entity: str, record: dict[str, Any]) -> Any:
    """Return search documents for one record, or ``None`` when the plugin has nothing for it.

    :param entity: the record's entity (``party``, ``activity``, ``sales.deal`` ...): any
        kernel entity or the ``entity`` of a declared ``SearchType``.
    :param record: the record's current row, as a dict (JSON columns decoded).

    Called after commit for every create and update of such a record (also through the API,
    CLI imports and jobs), when a party it belongs to changes owner or team, and for every
    record by ``tessera search reindex``; may return a coroutine. A document is a dict:
    ``type`` (a declared search type), ``id`` (int), ``title``, ``body``, optional
    ``owner_id``/``owner_ids`` and ``team_id``/``team_ids`` (who may see it), ``party_id``
    (its party's owner and team may see it too) and ``date`` (aware datetime, for date
    filters). The documents replace those the record produced before; when the record is
    deleted they are removed without calling the hook.
    """


# ---------------------------------------------------------------------------------------------
# Client card and web UI
# ---------------------------------------------------------------------------------------------


@hookspec
def tessera_timeline_items(party_id: int, principal: Any) -> Any:
    """Return items for the client card's chronological history of party ``party_id``.

    :param party_id: the party whose card is shown.
    :param principal: who reads the card (``tessera.permissions.Principal``): return only items
        about records this user may read (read them through ``tessera.entities.service``). A
        user may read a client without reading its other records (a client shared through a
        handed task, docs/security.md). An implementation may leave the argument out, but then
        every reader of the client sees its items.

    Called on every client-card request; usually returns a coroutine resolving to a list of
    dicts with ``kind``, ``at`` (aware datetime), ``title`` and optional ``id``, ``user_id``,
    ``detail``. Items are merged with the kernel's activities, tasks and notes by time.
    """


@hookspec
def tessera_party_participants(party_id: int) -> Any:
    """Return ids of users who work with party ``party_id`` through the plugin's records
    (open deals, tickets ...), as a list or a coroutine resolving to one.

    :param party_id: the party.

    Called by the "who else works with this client" endpoint.
    """


@hookspec
def tessera_nav_items() -> list[dict[str, Any]]:
    """Return entries for the web UI's navigation: ``{"label": "Deals", "href": "/sales/"}``;
    ``"more": True`` puts an entry in the header's "More" menu; ``"permission": "sales.deal.read"``
    shows it only to users who hold that permission (a link that would answer 403 is not
    offered). Called when a page is rendered."""


@hookspec
def tessera_translations() -> str | None:
    """Return the directory of the plugin's gettext catalogues
    (``<dir>/<locale>/LC_MESSAGES/messages.po`` for ``ru``, ``uk``, ``en``), or None.

    Called once when the app is built. The catalogues are merged over the kernel's, so the
    plugin's templates (``{{ _("Deals") }}``), its Python texts (``tessera.i18n.gettext``) and
    the words of the codes it registers with ``tessera.i18n.register_labels`` are shown in the
    user's language (docs/i18n.md).
    """


@hookspec
def tessera_party_tabs(party_id: int) -> list[dict[str, str]]:
    """Return extra tabs for the client card page: ``{"label": ..., "href": ...}``.

    :param party_id: the party whose card is rendered.
    """


@hookspec
def tessera_list_columns(list_name: str) -> list[dict[str, Any]]:
    """Return extra columns for a list page (``parties``, ``contacts``, ``activities``,
    ``tasks``, or a plugin's list such as ``sales.deals``): ``{"key": ..., "label": ...,
    "values": callable}``.

    Called each time the list is rendered or exported. ``values(principal, ids)`` receives the
    signed-in principal and the ids of the page's rows and returns ``{id: value}`` (or a
    coroutine giving it), fetched in one query and limited to what the principal may see;
    values are shown as text and exported as they are. ``label`` is a msgid of the plugin's
    catalogue. Return ``[]`` for lists the plugin does not extend.

    :param list_name: the name of the list being rendered.
    """


@hookspec
def tessera_card_widgets(party_id: int, principal: Any) -> Any:
    """Return small blocks for the client card page of party ``party_id``, as a list (or a
    coroutine resolving to one) of dicts:

    * ``title`` (text, shown as the block's heading);
    * ``rows``: a list of ``{"label": ..., "value": ..., "href": ...}`` (``href`` optional, a
      path of this site), or ``template``: a template of the plugin (``"<plugin>/<file>"``)
      rendered with ``context`` (a dict) plus ``party_id`` and ``principal``;
    * ``empty`` (optional): the text shown when there are no rows.

    :param party_id: the party whose card is rendered (the user may read it).
    :param principal: the signed-in user (``tessera.permissions.Principal``): read the plugin's
        records through ``tessera.entities.service`` with it, so the widget shows only what the
        user may see. An implementation may leave this argument out of its signature.

    Called on every client card page. Every text is autoescaped (rows and templates alike): a
    widget never injects HTML. Texts are shown as given: translate them in the hook.
    """


@hookspec
def tessera_record_widgets(kind: str, record_id: int, principal: Any) -> Any:
    """Return small blocks for the page of a plugin's record (a deal, a ticket), shaped like
    :func:`tessera_card_widgets`'s, as a list (or a coroutine resolving to one).

    :param kind: the record's kind, named by the page that asks (``"deal"`` on the sales
        plugin's deal page, ``"ticket"`` on the service plugin's ticket page).
    :param record_id: the record shown (the page checked that the user may read it).
    :param principal: the signed-in user (``tessera.permissions.Principal``): read records
        with it, so a block shows only what the user may see. May be left out of a signature.

    Called on every page of such a record, after the page read it; an implementation returns
    ``[]`` (or None) for kinds it does not know. A template widget is rendered with
    ``context``, ``kind``, ``record_id`` and ``principal``. Every text is autoescaped.
    """


@hookspec
def tessera_web_routes() -> list[Any]:
    """Return Litestar route handlers of the plugin's web pages (HTML, not in the OpenAPI).

    Called once when the app is built; they are mounted under ``/<plugin name>/``. Templates
    live in the ``templates/`` folder of the plugin's package and are rendered as
    ``"<plugin name>/<file>"`` with ``tessera.web.plugin_pages.render`` (they may extend the
    kernel's ``base.html``); ``current_principal`` and ``check_csrf`` give pages the kernel's
    sign-in and form protection.
    """


# ---------------------------------------------------------------------------------------------
# My day, search results and notifications
# ---------------------------------------------------------------------------------------------


@hookspec
def tessera_dashboard_widgets(principal: Any) -> Any:
    """Return panels for the signed-in user's "My day" page (``/app``): a list of widget dicts,
    or a coroutine resolving to one; ``None`` or ``[]`` when the plugin has nothing for this user.

    :param principal: the ``tessera.permissions.Principal`` whose page is rendered. Read through
        the plugin's services with it, so permissions and record visibility apply; "my" records
        are those of ``principal.user_id`` and of the absent users in ``principal.acting_for``.

    A widget: ``{"key": "sales.cadence", "title": ..., "items": [{"label", "href", "note",
    "flag"}], "kpis": [{"label", "value", "href"}], "more": {"label", "href"}, "empty": ...}``
    (all keys but ``title`` optional; every text already in the user's language, e.g. with
    ``tessera.i18n.gettext``; ``flag`` is a short word shown beside an item, such as
    "overdue"). Called on every request of the My day page, in plugin load order.
    """


@hookspec
def tessera_caller_facts(party_id: int, principal: Any) -> Any:
    """Return what the user answering a call from party ``party_id`` should see at once in the
    incoming-call pop-up (open deals, open tickets, overdue balance and promises ...): a list of
    ``{"label": ..., "value": ..., "href": ...}`` dicts (``href`` optional, a path of this site),
    or a coroutine resolving to one; ``None`` or ``[]`` for nothing.

    :param party_id: the caller's party, found by the calling number; the user may read it.
    :param principal: the ``tessera.permissions.Principal`` of the user whose extension rings:
        read through the plugin's services with it, so the pop-up shows only what they may see.

    Called by ``tessera.telephony`` once per ring, in the worker (AMI) or the server (the cloud
    PBX webhook), with the user's language active: translate the texts in the hook (e.g. with
    ``tessera.i18n.gettext``). Texts are shown as given and escaped.
    """


@hookspec
def tessera_accounting_documents(since: Any, principal: Any) -> Any:
    """Return the plugin's documents for the accounting system (won deals, orders, invoices ...)
    changed after ``since``, as a list of dicts (or a coroutine resolving to one):

    * ``type`` (``"deal"``, ``"order"``, ``"invoice"``), ``external_key`` (stable and unique in
      the plugin, e.g. ``"sales.deal:42"``: the accounting system deduplicates on it),
      ``date`` (ISO date), ``party_id``, ``amount`` (a decimal string), ``currency``;
    * anything else the accounting system needs (``number``, ``title``, ``lines``).

    :param since: a timezone-aware ``datetime``; ``None`` for every document.
    :param principal: the user asking for the export: return only what they may read.

    Called by ``GET /api/accounting/documents`` and ``tessera accounting export``.
    """


@hookspec
def tessera_record_urls(kind: str, ids: list[int]) -> Any:
    """Return the web pages of the plugin's records, ``{id: "/path"}`` (or a coroutine
    resolving to it), or ``None`` for a kind the plugin does not know.

    :param kind: a search type the plugin declared (``deal``), one of its entities
        (``sales.deal``) or the entity named in a notification's ``ref`` (``sales_cadence_rule``).
    :param ids: the ids of the records to link.

    Called by the global search results page (each hit of a plugin type becomes a link) and
    the notifications page (each message links to the record its ``ref`` names).
    """


# ---------------------------------------------------------------------------------------------
# Demo data
# ---------------------------------------------------------------------------------------------


@hookspec
def tessera_demo_data(ctx: Any) -> Any:
    """Create demo records for ``tessera demo``; usually returns a coroutine.

    :param ctx: ``tessera.demo.DemoContext`` with the demo users, teams and parties the
        kernel created (``ctx.users``, ``ctx.parties``) and a seeded ``ctx.random``.

    Called after the kernel's own demo data, in plugin load order.
    """
