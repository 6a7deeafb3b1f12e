#!/bin/sh
# One role per database, each owning its own database and nothing else: mlflow, prefect, optuna, domainflow.
#
# Compose's one-shot `postgres-init` job runs it on every `up`, as the superuser; no other service holds the
# superuser's password. It is idempotent: it creates what is missing and sets each role's password from the
# environment, so a password is rotated by editing infra/.env and running `up` again. A database the superuser
# filled before (a stack from before these roles) is handed over to its role, tables and all.
#
# Any PostgreSQL (Kubernetes, a managed server) takes it the same way, from a role that may create roles and
# databases (PGHOST, PGUSER, PGPASSWORD as libpq reads them):
#   MLFLOW_DB_PASSWORD=... PREFECT_DB_PASSWORD=... OPTUNA_DB_PASSWORD=... DOMAINFLOW_DB_PASSWORD=... \
#     PGHOST=db.example PGUSER=postgres sh infra/postgres-init.sh
# Arguments name other databases instead: each gets the role of its name and the password in <NAME>_DB_PASSWORD.
set -eu

databases="${*:-mlflow prefect optuna domainflow}"

fail() {
    echo "postgres-init: $*" >&2
    exit 1
}

password_of() {
    variable="$(echo "$1" | tr '[:lower:]' '[:upper:]')_DB_PASSWORD"
    eval "password=\${$variable:-}"
    case "$password" in
        "") fail "$variable is not set: give the role $1 a password in infra/.env" ;;
        *[Cc][Hh][Aa][Nn][Gg][Ee]-[Mm][Ee]*)
            fail "$variable is still the placeholder from infra/.env.example: set a random one (openssl rand -hex 24)" ;;
    esac
    echo "$password"
}

# Every password checked before anything changes.
for name in $databases; do
    password_of "$name" >/dev/null
done

run_sql() {  # database, then psql -v options; the statements come on stdin
    database="$1"
    shift
    psql --no-psqlrc --quiet --tuples-only --no-align -v ON_ERROR_STOP=1 --dbname "$database" "$@"
}

for name in $databases; do
    password="$(password_of "$name")"
    superuser="$(run_sql postgres -v role="$name" <<'SQL'
SELECT rolsuper FROM pg_roles WHERE rolname = :'role';
SQL
)"
    # The superuser of an older infra/.env was called domainflow: made the serving role, it would lose its powers.
    [ "$superuser" = "t" ] && fail "the role $name is a superuser (POSTGRES_USER?): name the superuser otherwise"

    run_sql postgres -v role="$name" -v password="$password" <<'SQL'
SELECT format('CREATE ROLE %I', :'role') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %L',
              :'role', :'password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'role', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'role') \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'role', :'role') \gexec
-- Only its owner (and the superuser) may connect: the other services' roles may not.
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'role') \gexec
SQL

    # Tables, views, free-standing sequences and types the superuser created before are handed over (a sequence
    # that belongs to a column moves with its table).
    run_sql "$name" -v role="$name" <<'SQL'
SELECT format('ALTER %s %I.%I OWNER TO %I',
              CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                             ELSE 'TABLE' END,
              n.nspname, c.relname, :'role')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S') AND c.relowner <> to_regrole(:'role')
   AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                            AND d.deptype IN ('a', 'i') AND c.relkind = 'S') \gexec
SELECT format('ALTER TYPE %I.%I OWNER TO %I', n.nspname, t.typname, :'role')
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd') AND t.typowner <> to_regrole(:'role') \gexec
SQL
    echo "postgres-init: role $name owns database $name"
done
