// gotar: the oracle for dataroot's goheader.ts. Reads one JSON header per line on stdin (byte
// strings in base64), writes the bytes Go's archive/tar Writer.WriteHeader emits for it with
// Format PAX (as moby's pkg/archive FileInfoHeader sets it), one hex line per header on stdout;
// a header Go refuses gives "error: ...".
package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

type spec struct {
	Name     string            `json:"name"`
	Linkname string            `json:"linkname"`
	Mode     int64             `json:"mode"`
	Uid      int               `json:"uid"`
	Gid      int               `json:"gid"`
	Size     int64             `json:"size"`
	Mtime    int64             `json:"mtime"`
	Type     byte              `json:"type"`
	Uname    string            `json:"uname"`
	Gname    string            `json:"gname"`
	Devmajor int64             `json:"devmajor"`
	Devminor int64             `json:"devminor"`
	Xattrs   map[string]string `json:"xattrs"`
}

func b64(s string) string {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<24)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for in.Scan() {
		var s spec
		if err := json.Unmarshal(in.Bytes(), &s); err != nil {
			panic(err)
		}
		h := &tar.Header{
			Name: b64(s.Name), Linkname: b64(s.Linkname), Mode: s.Mode, Uid: s.Uid, Gid: s.Gid, Size: s.Size,
			ModTime: time.Unix(s.Mtime, 0), Typeflag: s.Type, Uname: b64(s.Uname), Gname: b64(s.Gname),
			Devmajor: s.Devmajor, Devminor: s.Devminor, Format: tar.FormatPAX,
		}
		if len(s.Xattrs) > 0 {
			h.Xattrs = map[string]string{}
			for k, v := range s.Xattrs {
				h.Xattrs[k] = b64(v)
			}
		}
		var buf bytes.Buffer
		w := tar.NewWriter(&buf)
		if err := w.WriteHeader(h); err != nil {
			fmt.Fprintf(out, "error: %v\n", err)
			continue
		}
		fmt.Fprintln(out, hex.EncodeToString(buf.Bytes()))
	}
}
