"""Host defences and facts: connection limits, the open-file limit, log throttling, board
health and node identity.
"""
