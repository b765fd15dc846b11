"""The local MongoDB-wire server (SecantusDB) as the local stack runs it: its own command
line, with the oplog kept whole instead of pruned from inside the writes.

SecantusDB prunes its oplog from within every thousandth write, while that write's batch
transaction is open, by opening a fresh session and stepping a cursor onto the oldest
entry of each of its oplog tables. Under large batch inserts that step grew with the
data: rebuilding 100,000 scoring events, the inserting thread spent about three quarters
of its time there (sampled), and one such rebuild stopped for good inside it (every other
connection waiting, the server idle). Nothing local needs a short oplog (the change
streams only read its newest entries), so the stack keeps every entry for the life of
its temporary data directory. Development and test tooling only: the services never
import SecantusDB.

    python -m citydesk.mongo_server --host 127.0.0.1 --port 27017 --storage-path DIR ...
"""

from __future__ import annotations

import sys

import secantus.storage
from secantus.cli import main

# the write path prunes when its count of written entries reaches this; never, here
secantus.storage._OPLOG_PRUNE_INTERVAL = sys.maxsize

if __name__ == "__main__":
    sys.exit(main())
