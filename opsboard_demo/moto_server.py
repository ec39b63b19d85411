"""moto's server for the demo, with one addition: seeded messages can carry the time they were sent.

SQS cannot backdate a send, so messages the demo seeds (the backlog and the DLQ its loaded history
ends with) would all carry the moment of seeding. A message sent with the `SENT_AT` attribute
(epoch milliseconds) is recorded here as sent then, so the DLQ page, the trace and the queue's
ages tell the same story as the charts. Run as `python -m opsboard_demo.moto_server -H … -p …`.
"""

from __future__ import annotations

import sys

from moto.server import main
from moto.sqs import models

from opsboard_demo.emulator import SENT_AT


def backdate_sends() -> None:
    original = models.Message.mark_sent

    def mark_sent(self, delay_seconds=None):
        original(self, delay_seconds)
        attribute = (self.message_attributes or {}).get(SENT_AT) or {}
        value = attribute.get("string_value") or attribute.get("StringValue")
        if value and value.isdigit():
            self.sent_timestamp = int(value)

    models.Message.mark_sent = mark_sent


if __name__ == "__main__":
    backdate_sends()
    main(sys.argv[1:])
