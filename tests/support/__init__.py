"""What the tests share besides fixtures (those are in conftest.py): real-photo variants,
the hostile corpus, the in-process reference, a real broker, waiting for an event with a
bound that only stops a hang, and the slow-client and mDNS helper scripts run as processes."""
