"""Kafka users and ACLs for a jiesu deployment (``jiesu kafka-acls``)."""
