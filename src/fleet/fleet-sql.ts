/** The statements of the fleet coordinator (src/fleet/coordinator.ts); every time is the database's clock. */

/** Registers or refreshes this instance: $1 id, $2 host, $3 pid, $4 providers it has work queued for. */
export const heartbeatSql = `
INSERT INTO fleet_instance (id, host, pid, busy) VALUES ($1, $2, $3, $4)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), busy = EXCLUDED.busy`

/**
 * The other live instances (a separate statement after the heartbeat, so of
 * two instances registering at once at least one sees the other) and the
 * fleet-wide pauses still running, in ms from now.
 */
export const liveSql = `
SELECT 'instance' AS kind, id AS name, busy, 0::float8 AS ms FROM fleet_instance
 WHERE id <> $1 AND heartbeat_at > now() - make_interval(secs => $2::float8 / 1000)
UNION ALL
SELECT 'pause', provider, '{}', extract(epoch FROM paused_until - now()) * 1000 FROM fleet_provider_pause
 WHERE paused_until > now() AND set_by <> $1`

/** A 429 seen here: $1 provider, $2 pause ms, $3 this instance. */
export const pauseSql = `
INSERT INTO fleet_provider_pause (provider, paused_until, set_by) VALUES ($1, now() + make_interval(secs => $2::float8 / 1000), $3)
ON CONFLICT (provider) DO UPDATE SET paused_until = EXCLUDED.paused_until, set_by = EXCLUDED.set_by
 WHERE fleet_provider_pause.paused_until < EXCLUDED.paused_until`

/** Leaving: the others take the share back within three heartbeats; rows of instances dead for an hour are cleared too. */
export const leaveSql = `DELETE FROM fleet_instance WHERE id = $1 OR heartbeat_at < now() - interval '1 hour'`
