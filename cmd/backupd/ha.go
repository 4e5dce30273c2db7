//go:build ha

package main

import (
	"github.com/backupd/backupd/internal/ha"
	"github.com/backupd/backupd/internal/leader"
)

// electorFactory links leader election (client-go) into this build: see
// internal/leader for why only builds with the `ha` tag carry it.
func electorFactory() leader.Factory { return ha.Factory }
