"""The ground floor: every state table, opening the database and migrating it, the audit log and the locks.

Serving, canary, registry, monitoring and retraining keep their state here and nowhere else;
this package imports none of them.
"""
