"""IMDSv2 credentials that expire every 60 s are rotated during a run with
nothing lost: its own file so CTest runs its 75 s of waiting beside the
other upload tests."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Container, main  # noqa: E402
from test_upload import UploadCase, fixture_lines  # noqa: E402


class Rotation(UploadCase):
    def test_imds_credentials_rotate_during_a_run(self):
        fake = self.fake(credential_lifetime=60)
        env = self.env_for(fake)
        c = Container(env.containers, name="rot")
        d = env.start(dry_run=False)
        first_key = fake.current_credentials().access_key_id
        sent = 0
        deadline = time.time() + 75
        while time.time() < deadline:
            c.write_lines(fixture_lines(10, "r%03d-" % sent), ts_ns=time.time_ns())
            sent += 1
            time.sleep(2.5)
        fake.wait_events(sent * 10, timeout=20)
        self.assertEqual(d.stop(), 0)
        self.assertNotEqual(fake.current_credentials().access_key_id, first_key)
        msgs = [e["message"] for e in fake.events()]
        self.assertEqual(len(msgs), sent * 10)
        self.assertEqual(len(set(msgs)), sent * 10)
        errors = fake.requests()["ops"].get("PutLogEvents", {}).get("errors", {})
        self.assertNotIn("ExpiredTokenException", errors)



if __name__ == "__main__":
    main()
