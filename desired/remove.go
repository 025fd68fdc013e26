package desired

import (
	"bytes"
	"fmt"

	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/packets-dev/packets/packages"
)

// removeFromSource returns src without the blocks that declare name.
//
// hclwrite's RemoveBlock also deletes the comment lines directly above a
// block, and formatting a whole hclwrite file realigns every other block; so
// the blocks are cut out of the source by their exact ranges instead, with
// the whitespace around them tidied so that no double blank line is left.
func removeFromSource(filename string, src []byte, name packages.Name) ([]byte, error) {
	f, err := parseForEdit(filename, src)
	if err != nil {
		return nil, err
	}
	blocks := packageBlocks(f, name)
	out := src
	for i := len(blocks) - 1; i >= 0; i-- { // from the end: earlier offsets stay valid
		out = cutBlock(out, blocks[i])
	}
	if len(blocks) > 0 {
		// The result must still parse; anything else is a bug here.
		if _, err := parseForEdit(filename, out); err != nil {
			return nil, fmt.Errorf("remove %s from %s: the edit would break the file: %w", name, filename, err)
		}
	}
	return out, nil
}

// cutBlock removes one block from src. When the block has its lines to
// itself, those whole lines go, and one blank line too if the block sat
// between two of them (or between one and the start or end of the file).
// What shares a line with the block, such as a trailing comment, stays.
func cutBlock(src []byte, b *hclsyntax.Block) []byte {
	start, end := b.Range().Start.Byte, b.Range().End.Byte
	ls := lineStart(src, start)
	if isBlank(src[ls:start]) {
		start = ls
	}
	le := lineEnd(src, end)
	if isBlank(src[end:le]) {
		end = le
	} else {
		// A comment follows on the same line: keep it, without the blanks
		// that separated it from the block.
		for end < le && (src[end] == ' ' || src[end] == '\t') {
			end++
		}
	}
	wholeLines := start == ls && (end == le || end == len(src))
	if wholeLines {
		prevBlank := start == 0 || isBlank(src[lineStart(src, start-1):start])
		nextBlank := end == len(src) || isBlank(src[end:lineEnd(src, end)])
		switch {
		case prevBlank && nextBlank && end < len(src):
			end = lineEnd(src, end)
		case prevBlank && nextBlank && start > 0:
			start = lineStart(src, start-1)
		}
	}
	out := make([]byte, 0, len(src)-(end-start))
	out = append(out, src[:start]...)
	return append(out, src[end:]...)
}

// lineStart returns the offset where the line holding offset i starts.
func lineStart(src []byte, i int) int {
	return bytes.LastIndexByte(src[:i], '\n') + 1
}

// lineEnd returns the offset just past the end of the line holding offset
// i: after its newline, or the end of src.
func lineEnd(src []byte, i int) int {
	if j := bytes.IndexByte(src[i:], '\n'); j >= 0 {
		return i + j + 1
	}
	return len(src)
}

// isBlank reports whether b holds only spaces, tabs and line ends.
func isBlank(b []byte) bool {
	return len(bytes.Trim(b, " \t\r\n")) == 0
}
