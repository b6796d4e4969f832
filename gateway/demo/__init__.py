"""`gateway demo`: a simulated village hall, an embedded broker and the gateway, in one command."""
