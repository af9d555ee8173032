"""Pure view logic of the portal: Vietnamese labels, pagination, form validation, the tracking
timeline. No I/O, no HTTP clients."""
