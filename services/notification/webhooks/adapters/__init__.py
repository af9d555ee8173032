"""The webhooks' adapters: the MongoDB registry and delivery log, replay jobs, the sealing of
signing secrets, the HTTP sender, DNS checks of subscriber URLs, and the public topic reader."""
