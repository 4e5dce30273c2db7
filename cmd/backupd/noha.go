//go:build !ha

package main

import "github.com/backupd/backupd/internal/leader"

// electorFactory is nil in the lean build: a configuration with ha: is
// refused at validate and at start (build with -tags ha to accept it).
func electorFactory() leader.Factory { return nil }
