"""Dataset card templates (Jinja). A package so that they install with lidr-data (as `lidr_data.datacards`)."""
