"""The demo school: a deterministic generator, the fake upstream journal and `otmetka demo`."""
