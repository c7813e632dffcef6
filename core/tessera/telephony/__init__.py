"""Telephony: calls from an Asterisk PBX (``tessera.telephony.ami``, run by ``tessera worker``)
or a cloud PBX's webhook (``POST /api/telephony/events``) become call activities, call-back
tasks and incoming-call pop-ups (``tessera.telephony.calls``). docs/integrations.md, "Telephony".
"""
