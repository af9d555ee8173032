"""Pure rules of the citizen messages: which step sends which message, channel routing, delivery
statuses, SMS text, receipt signatures, and the channel port."""
