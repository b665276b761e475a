"""Sources of journal data: the upstream HTTP API (`http`), the inbox folder (`inbox`) with
its file formats (`files`) and OneRoster CSV bundles (`oneroster`).

Every source hands the importer whole batches (`daemon.batch.RawBatch`) and lets it apply
each one in a single transaction together with the source's cursor; no source writes
journal tables itself.
"""

from __future__ import annotations
