"""Pure rules of the national-portal sync: the dossier record, the portal's messages and the
sync statuses."""
