"""Sample code for other agencies (not part of the platform; each file stands alone)."""
