// Package migrations holds bankwire's versioned PostgreSQL schema as plain SQL
// files, embedded into the binary so the app tier can migrate a database
// without shipping loose files next to it.
//
// Files are named NNNNN_description.sql and use goose annotations
// (-- +goose Up / Down). They are applied by store.Migrate, never by hand:
// the store wraps them in goose's Provider under a PostgreSQL advisory lock so
// several app tiers starting at once cannot apply the same version twice.
//
// Rules for new files: never edit a released file, add a new version instead;
// keep money in bigint minor units; put every invariant the bank relies on
// into the database (CHECK, FOREIGN KEY, UNIQUE, triggers), not only into Go.
package migrations

import "embed"

// FS contains every migration file. goose reads it through io/fs, so the
// same files serve tests, the apptier binary and the `migrate` subcommand.
//
//go:embed *.sql
var FS embed.FS
