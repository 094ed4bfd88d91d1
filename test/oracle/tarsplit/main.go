// tarsplitoracle is the test oracle for dataroot's tar reader and tar-split code: Debian's
// golang-github-vbatts-tar-split-dev (0.11.2, the version dockerd 20.10 vendors) and Go's
// archive/tar. Built in GOPATH mode; never part of the product.
//
//	tarsplitoracle disasm TAR OUT.ndjson       tar-split NDJSON of a tar, as dockerd writes it
//	tarsplitoracle asm NDJSON DIR OUT.tar      reassemble a tar from tar-split and a directory
//	tarsplitoracle gentar SEED OUT.tar         a tar written by Go's archive/tar with varied entries
//	tarsplitoracle list TAR                    every header as Go's reader sees it (JSON lines)
package main

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"io/ioutil"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vbatts/tar-split/tar/asm"
	"github.com/vbatts/tar-split/tar/storage"
)

func die(err error) {
	fmt.Fprintln(os.Stderr, "tarsplitoracle:", err)
	os.Exit(2)
}

func must(err error) {
	if err != nil {
		die(err)
	}
}

func main() {
	if len(os.Args) < 3 {
		die(fmt.Errorf("usage: tarsplitoracle disasm|asm|gentar|list ..."))
	}
	switch os.Args[1] {
	case "disasm":
		in, err := os.Open(os.Args[2])
		must(err)
		out, err := os.Create(os.Args[3])
		must(err)
		r, err := asm.NewInputTarStream(in, storage.NewJSONPacker(out), nil)
		must(err)
		_, err = io.Copy(ioutil.Discard, r)
		must(err)
		must(out.Close())
	case "asm":
		in, err := os.Open(os.Args[2])
		must(err)
		out, err := os.Create(os.Args[4])
		must(err)
		must(asm.WriteOutputTarStream(storage.NewPathFileGetter(os.Args[3]), storage.NewJSONUnpacker(in), out))
		must(out.Close())
	case "gentar":
		seed, _ := strconv.ParseInt(os.Args[2], 10, 64)
		gentar(seed, os.Args[3])
	case "list":
		list(os.Args[2])
	default:
		die(fmt.Errorf("unknown command %s", os.Args[1]))
	}
}

func list(path string) {
	f, err := os.Open(path)
	must(err)
	tr := tar.NewReader(f)
	enc := json.NewEncoder(os.Stdout)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		must(err)
		xattrs := map[string]string{}
		for k, v := range h.PAXRecords {
			if strings.HasPrefix(k, "SCHILY.xattr.") {
				xattrs[strings.TrimPrefix(k, "SCHILY.xattr.")] = v
			}
		}
		must(enc.Encode(map[string]interface{}{
			"name": []byte(h.Name), "linkname": []byte(h.Linkname), "type": int(h.Typeflag), "mode": h.Mode,
			"uid": h.Uid, "gid": h.Gid, "size": h.Size, "mtime": h.ModTime.Unix(), "uname": h.Uname, "gname": h.Gname,
			"devmajor": h.Devmajor, "devminor": h.Devminor, "xattrs": xattrs,
		}))
	}
}

func gentar(seed int64, out string) {
	r := rand.New(rand.NewSource(seed))
	f, err := os.Create(out)
	must(err)
	tw := tar.NewWriter(f)
	mtime := time.Unix(1600000000+r.Int63n(100000000), 0)
	name := func(depth int) string {
		parts := []string{}
		for i := 0; i < depth; i++ {
			n := 1 + r.Intn(12)
			if r.Intn(15) == 0 {
				n = 60 + r.Intn(80) // long component: the name needs PAX or the ustar prefix
			}
			b := make([]byte, n)
			for j := range b {
				b[j] = "abcdefghijklmnopqrstuvwxyz0123456789._-"[r.Intn(39)]
			}
			if string(b) == "." || string(b) == ".." {
				b = append(b, 'x')
			}
			parts = append(parts, string(b))
		}
		s := strings.Join(parts, "/")
		if r.Intn(20) == 0 {
			s += "-é<&>" // non-ASCII and HTML characters (escaped by Go's JSON encoder)
		}
		return s
	}
	seen := map[string]bool{}
	prefixes := map[string]bool{}
	var files []string
	format := tar.FormatUnknown
	if seed%3 == 1 {
		format = tar.FormatPAX
	} else if seed%3 == 2 {
		format = tar.FormatGNU
	}
	if seed%4 == 0 {
		must(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "dataroot"}}))
	}
	n := 5 + r.Intn(60)
	for i := 0; i < n; i++ {
		nm := name(1 + r.Intn(4))
		// No name may be another's parent directory: the archive must extract to a tree.
		clash := seen[nm] || prefixes[nm]
		parts := strings.Split(nm, "/")
		for k := 1; k < len(parts); k++ {
			if seen[strings.Join(parts[:k], "/")] {
				clash = true
			}
		}
		if clash {
			continue
		}
		seen[nm] = true
		for k := 1; k < len(parts); k++ {
			prefixes[strings.Join(parts[:k], "/")] = true
		}
		h := &tar.Header{Name: nm, Mode: int64(0644 | r.Intn(0777)), Uid: r.Intn(3) * 1000, Gid: r.Intn(3) * 100, ModTime: mtime, Format: format}
		if format == tar.FormatGNU && len(nm) > 100 {
			h.Format = tar.FormatGNU
		}
		if r.Intn(30) == 0 {
			h.Uid = 3000000 + r.Intn(1000) // beyond octal 7 digits: PAX or base-256
		}
		var data []byte
		switch k := r.Intn(12); {
		case k < 5:
			h.Typeflag = tar.TypeReg
			sizes := []int{0, 1, 511, 512, 513, 4096, 70000}
			data = make([]byte, sizes[r.Intn(len(sizes))])
			r.Read(data)
			h.Size = int64(len(data))
			files = append(files, nm)
		case k < 7:
			h.Typeflag = tar.TypeDir
			h.Name += "/"
			h.Mode = 0755
		case k < 8:
			h.Typeflag = tar.TypeSymlink
			h.Linkname = name(1 + r.Intn(3))
		case k < 9 && len(files) > 0:
			h.Typeflag = tar.TypeLink
			h.Linkname = files[r.Intn(len(files))]
		case k < 10:
			h.Typeflag = tar.TypeChar
			h.Devmajor, h.Devminor = 0, 0
			h.Name = strings.TrimSuffix(h.Name, "/")
		case k < 11:
			h.Typeflag = tar.TypeFifo
		default:
			h.Typeflag = tar.TypeReg
			data = []byte("x")
			h.Size = 1
			if format != tar.FormatGNU {
				h.PAXRecords = map[string]string{"SCHILY.xattr.user.dataroot": "v" + strconv.Itoa(i)}
				h.Format = tar.FormatPAX
			}
		}
		must(tw.WriteHeader(h))
		if len(data) > 0 {
			_, err := tw.Write(data)
			must(err)
		}
	}
	must(tw.Close())
	if seed%5 == 0 {
		_, err = f.Write(make([]byte, 10240-int(fileSize(f))%10240)) // record padding, as GNU tar writes
		must(err)
	}
	must(f.Close())
}

func fileSize(f *os.File) int64 {
	st, err := f.Stat()
	must(err)
	return st.Size()
}
