# kazoo-channels .rpm: the service's system user, before the files (the
# configuration belongs to its group).
getent group kazoo-channels >/dev/null || groupadd --system kazoo-channels
getent passwd kazoo-channels >/dev/null || \
    useradd --system --gid kazoo-channels --no-create-home --home-dir /nonexistent \
        --shell /sbin/nologin --comment "kazoo-channels whapp" kazoo-channels
exit 0
