#!/bin/bash
# Entrypoint of composekit-test/postgres:15, a subset of the official postgres
# image's docker-entrypoint.sh: same variables, same first-start initialisation,
# and the server ends up as PID 1 (exec), running as the postgres user.
set -Eeo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" "$*" >&2; }

# file_env VAR [DEFAULT]: VAR from $VAR or from the file named by $VAR_FILE.
file_env() {
    local var=$1 fileVar="${1}_FILE" def=${2:-} val
    if [[ -n ${!var:-} && -n ${!fileVar:-} ]]; then
        log "error: both $var and $fileVar are set (but are exclusive)"
        exit 1
    fi
    val=$def
    if [[ -n ${!var:-} ]]; then
        val=${!var}
    elif [[ -n ${!fileVar:-} ]]; then
        val=$(<"${!fileVar}")
    fi
    export "$var"="$val"
    unset "$fileVar"
}

# "docker run IMAGE -c foo=bar" means "postgres -c foo=bar".
if [[ ${1:0:1} == - ]]; then
    set -- postgres "$@"
fi

if [[ $1 != postgres ]]; then
    exec "$@"
fi

if [[ $(id -u) == 0 ]]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    chmod 3777 /var/run/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

file_env POSTGRES_PASSWORD
file_env POSTGRES_USER postgres
file_env POSTGRES_DB "$POSTGRES_USER"
file_env POSTGRES_INITDB_ARGS
: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"

if [[ ! -s $PGDATA/PG_VERSION ]]; then
    if [[ -z $POSTGRES_PASSWORD && $POSTGRES_HOST_AUTH_METHOD != trust ]]; then
        log "error: database is uninitialized and superuser password is not specified."
        log "       Set POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE), or POSTGRES_HOST_AUTH_METHOD=trust."
        exit 1
    fi
    log "initialising $PGDATA for user $POSTGRES_USER, database $POSTGRES_DB"
    pwopt=()
    if [[ -n $POSTGRES_PASSWORD ]]; then
        pwfile=$(mktemp)
        printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
        pwopt=(--pwfile="$pwfile")
    fi
    # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a list of words, as in the official image
    initdb --username="$POSTGRES_USER" "${pwopt[@]}" -D "$PGDATA" \
        --encoding=UTF8 --locale=C.UTF-8 $POSTGRES_INITDB_ARGS
    if [[ -n ${pwfile:-} ]]; then rm -f "$pwfile"; fi
    if [[ $POSTGRES_HOST_AUTH_METHOD == scram-sha-256 ]]; then
        echo "password_encryption = 'scram-sha-256'" >>"$PGDATA/postgresql.auto.conf"
    fi
    printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"

    # A temporary server, to create the database and run init scripts. Unlike the official
    # image's, its socket is not the default one, so `pg_isready` (a healthcheck) does not
    # report ready before the real server is up.
    init_socket_dir=$(mktemp -d /var/run/postgresql/init.XXXXXX)
    export PGUSER=$POSTGRES_USER PGPASSWORD=$POSTGRES_PASSWORD PGHOST=$init_socket_dir PGPORT=5432
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432 -c unix_socket_directories=$init_socket_dir" \
        -w start >/dev/null
    psql_cmd=(psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc --dbname postgres)
    if [[ $POSTGRES_DB != postgres ]]; then
        "${psql_cmd[@]}" --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db" ;' >/dev/null
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        # shellcheck disable=SC1090  # init scripts are the user's
        case $f in
            *.sh) log "running $f"; if [[ -x $f ]]; then "$f"; else . "$f"; fi ;;
            *.sql) log "running $f"; "${psql_cmd[@]}" --dbname "$POSTGRES_DB" -f "$f" >/dev/null ;;
            *.sql.gz) log "running $f"; gunzip -c "$f" | "${psql_cmd[@]}" --dbname "$POSTGRES_DB" >/dev/null ;;
            *) if [[ -e $f ]]; then log "ignoring $f"; fi ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    rmdir "$init_socket_dir"
    unset PGPASSWORD PGHOST PGPORT PGUSER
    log "initialisation done; starting the server"
fi

exec "$@"
