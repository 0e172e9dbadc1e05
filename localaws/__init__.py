"""Offline AWS for this project: a pinned, patched moto server process, the API Gateway data plane and the
local Lambda runtime. Start/stop with ``python -m localaws up|down|status|env`` or ``localaws.lifecycle``."""
