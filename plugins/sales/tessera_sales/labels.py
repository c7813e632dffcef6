"""Human words for the sales plugin's codes shown on kernel pages (search result groups,
notifications), registered when the plugin is loaded: the kernel's search page and inbox read
them with ``tessera.i18n.label`` whatever page of the plugin was opened first."""

from __future__ import annotations

from tessera import i18n
from tessera.i18n import N_

i18n.register_labels("search.type", {"deal": N_("Deals"), "proposal": N_("Proposals")})
i18n.register_labels("notification.kind", {"sales.cadence_overdue": N_("Clients past their contact norm")})
