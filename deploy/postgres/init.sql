-- Run once by the postgres image's entrypoint when the data volume is empty
-- (docker-compose.yml mounts it into /docker-entrypoint-initdb.d/).
-- One database per service; the `jiesu` role is created by the image from
-- POSTGRES_USER / POSTGRES_PASSWORD and owns them.
CREATE DATABASE jiesu_intake OWNER jiesu;
CREATE DATABASE jiesu_dispatch OWNER jiesu;
CREATE DATABASE jiesu_evaluation OWNER jiesu;
