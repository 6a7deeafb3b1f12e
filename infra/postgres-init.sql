-- Runs once, on an empty data volume: POSTGRES_DB (mlflow) exists already; Prefect and
-- domainflow's serving state (prediction log, rollouts, audit) get their own databases.
CREATE DATABASE prefect;
CREATE DATABASE domainflow;
