-- Run once by the postgres image's entrypoint when the data volume is empty
-- (docker-compose.yml mounts it into /docker-entrypoint-initdb.d/).
-- One database per service and one for credentials; the `jiesu` role is created by the image from
-- POSTGRES_USER / POSTGRES_PASSWORD and owns them.
CREATE DATABASE jiesu_intake OWNER jiesu;
CREATE DATABASE jiesu_dispatch OWNER jiesu;
CREATE DATABASE jiesu_evaluation OWNER jiesu;
-- The credential store the three share (API keys, audit log).
CREATE DATABASE jiesu_auth OWNER jiesu;
