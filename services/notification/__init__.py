"""Notification (thông báo): everything that leaves the platform, in three parts composed by
`main`: `citizens` (messages to citizens), `webhooks` (the public stream and agency webhooks) and
`portal` (the national-portal sync)."""
