"""Citizen messages: a receipt on submission and a message per workflow step, rendered from
templates and delivered by SMS, e-mail or the portal inbox (with retries and fallback); SMS
delivery receipts; the delivery log and inbox for staff."""
