"""Open311 GeoReport v2 on intake: the guide's kinds as services, requests posted as hotline reports."""
