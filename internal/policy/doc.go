// Package policy turns the YAML file users write into a validated Config:
// strict decoding with a file:line:column for every problem, defaults,
// secrets loaded from files or the environment (never inline), cron
// schedules with explicit daylight-saving behaviour, target selection
// against Atlas, and the pure planning helpers (jitter, next fire times).
//
// A typo in a policy must never become a silent gap in someone's backups,
// so everything unknown, ambiguous or unsafe is an error, all errors are
// reported at once, and nothing here panics on bad input.
package policy

// The binary embeds the IANA time zone database so `timezone:` works in
// minimal containers without /usr/share/zoneinfo.
import _ "time/tzdata"
