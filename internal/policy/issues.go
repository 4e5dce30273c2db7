package policy

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Position locates something in a configuration file, so every message
// can send the user to the exact line to fix.
type Position struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Column int    `json:"column"`
}

// String renders "file:line:col" (column omitted when unknown).
func (p Position) String() string {
	switch {
	case p.Line <= 0:
		return p.File
	case p.Column <= 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}

// Issue is one problem (or warning) found in a configuration file. Path is
// the key path as the user wrote it, e.g. "policies[1].export.bucketID";
// it is empty for whole-file problems.
type Issue struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
}

// String renders the issue the way compilers do, so editors can jump to it:
// "config.yaml:14:7: policies[1].export.bucketID: must match ^[a-f0-9]{24}$".
func (i Issue) String() string {
	pos := Position{File: i.File, Line: i.Line, Column: i.Column}.String()
	if i.Path == "" {
		return pos + ": " + i.Message
	}
	return pos + ": " + i.Path + ": " + i.Message
}

// Errors is every problem found in one configuration file. Load and Parse
// return it (as error) so callers can print all problems at once instead
// of making the user fix them one run at a time.
type Errors struct {
	List []Issue
}

// Error joins all issues, one per line.
func (e *Errors) Error() string {
	lines := make([]string, len(e.List))
	for i, is := range e.List {
		lines[i] = is.String()
	}
	return strings.Join(lines, "\n")
}

// sortIssues orders issues by position so output reads top to bottom.
func sortIssues(list []Issue) {
	slices.SortStableFunc(list, func(a, b Issue) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
}
