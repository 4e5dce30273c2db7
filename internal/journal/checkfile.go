package journal

import (
	"fmt"
	"os"
)

// CheckBoltFile walks every page of the bbolt file at path, as Open does
// for the journal, without opening it with bbolt: bbolt may panic on a
// damaged page, so other bbolt files backupd keeps (the notify store) are
// checked this way first. Damage is returned as a *CorruptError.
func CheckBoltFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("checking %s: %w", path, err)
	}
	if err := checkFile(f, st.Size(), func([][]byte, []byte, []byte) error { return nil }); err != nil {
		return attribute(path, "check", err)
	}
	return nil
}
