"""The citizen messages' adapters: the MongoDB store, the channels (SMTP, SMS gateway, portal
inbox) with their provider protection, and the template renderer."""
