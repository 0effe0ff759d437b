-- Run once by the postgres image on an empty volume: the plugin's database, next to Grafana's.
-- The role owns the database, so the plugin creates its schema (wizauditlogs) and the pg_trgm
-- extension itself.
CREATE DATABASE wizauditlogs OWNER grafana;
