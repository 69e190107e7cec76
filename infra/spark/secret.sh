# The cluster's shared secret (spark.authenticate), sourced by master.sh, worker.sh and submit.sh.
#
#   SPARK_SECRET_FILE   the secret (default ~/.config/mtnlg/spark.secret), readable by its owner only.
#                       master.sh creates it when missing: 32 random bytes in hex. Every worker and every
#                       driver needs the same file (infra/README.md).
#
# Never on a command line, where `ps` shows it to every user: daemons get it in their environment (Spark's
# _SPARK_AUTH_SECRET, as workers hand it to executors; spark.authenticate.secret.file is for Kubernetes
# only), drivers from blending/spark_session.py, which passes it to the JVM after it started.

SPARK_SECRET_FILE=${SPARK_SECRET_FILE:-${XDG_CONFIG_HOME:-$HOME/.config}/mtnlg/spark.secret}
export SPARK_SECRET_FILE

# Written under a temporary name, then hard-linked into place: link() fails when the file exists, so two
# masters starting at once end with one secret, and nobody reads a half-written one.
create_spark_secret() {
    local folder temporary
    [ -e "$SPARK_SECRET_FILE" ] && return 0
    folder=$(dirname "$SPARK_SECRET_FILE")
    mkdir -p -m 700 "$folder"
    temporary=$(mktemp "$folder/.spark.secret.XXXXXX")  # mode 0600
    od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$temporary"
    if ln "$temporary" "$SPARK_SECRET_FILE" 2>/dev/null; then
        echo "created the cluster's Spark secret in $SPARK_SECRET_FILE: copy it to every worker and driver" >&2
    fi
    rm -f "$temporary"
}

# Refuses a missing or empty secret, or one that others can read (they could then run code on every worker).
require_private_spark_secret() {
    local mode
    if [ ! -s "$SPARK_SECRET_FILE" ]; then
        echo "no Spark secret at $SPARK_SECRET_FILE (SPARK_SECRET_FILE): copy the master's, see infra/README.md" >&2
        exit 2
    fi
    mode=$(stat -c %a "$SPARK_SECRET_FILE")
    if (( 8#$mode & 8#077 )); then
        echo "$SPARK_SECRET_FILE (SPARK_SECRET_FILE) is readable by others (mode $mode): chmod 600 it" >&2
        exit 2
    fi
}

# A master's or worker's settings: RPC authentication with the secret, UI ACLs (the owner only, once a UI
# filter names users: infra/README.md) and no kill buttons on the UI.
export_spark_daemon_auth() {
    _SPARK_AUTH_SECRET=$(< "$SPARK_SECRET_FILE")
    export _SPARK_AUTH_SECRET
    SPARK_DAEMON_JAVA_OPTS="${SPARK_DAEMON_JAVA_OPTS:-} -Dspark.authenticate=true -Dspark.acls.enable=true"
    export SPARK_DAEMON_JAVA_OPTS="$SPARK_DAEMON_JAVA_OPTS -Dspark.ui.killEnabled=false"
}
