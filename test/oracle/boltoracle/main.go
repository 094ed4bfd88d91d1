// boltoracle is the test oracle for dataroot's TypeScript bbolt reader. It is built from
// Debian's golang-github-coreos-bbolt-dev (bbolt 1.3.6) in GOPATH mode and is never part of
// the product.
//
//	boltoracle gen   OUT SEED SCENARIO PAGESIZE  write a database for a scenario from a seed
//	boltoracle dump  FILE                        NDJSON of every entry, depth-first in key order
//	boltoracle check FILE                        tx.Check(): each error, then "N errors found" or "OK"
//	boltoracle stats FILE                        the bbolt CLI's stats report (tx.ForEach + Bucket.Stats)
//	boltoracle walk  FILE                        count every key with a cursor (benchmark reference)
//	boltoracle bench OUT KEYS                    a large file for the benchmarks
//	boltoracle compact DST SRC TXMAX PAGESIZE     bbolt compact: bolt.Compact(dst, src, TXMAX) into a new
//	                                             file (PAGESIZE 0: bbolt's default, the OS page size)
//	boltoracle shape FILE                        every bucket's page tree, page ids left out
//	boltoracle touch FILE...                     for each file: open it read-write, add a bucket of 300
//	                                             keys, delete half of them, delete a top-level bucket's
//	                                             first key if any, tx.Check() ("#file", result, "#end")
//	boltoracle verify [-shape] [-hash] [-touch] FILE...
//	                                             for each file: check, dump (-hash: its sha256 and length),
//	                                             (-shape) whether its shape equals that of Compact(file, 0)
//	                                             at its page size, (-touch) touch on a copy ("#touch OK")
package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/ioutil"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

func die(err error) {
	fmt.Fprintln(os.Stderr, "boltoracle:", err)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 3 {
		die(fmt.Errorf("usage: boltoracle gen|dump|check|walk|bench ..."))
	}
	switch os.Args[1] {
	case "gen":
		seed, _ := strconv.ParseInt(os.Args[3], 10, 64)
		ps, _ := strconv.Atoi(os.Args[5])
		gen(os.Args[2], seed, os.Args[4], ps)
	case "dump":
		dump(os.Args[2])
	case "check":
		check(os.Args[2])
	case "walk":
		walk(os.Args[2])
	case "stats":
		stats(os.Args[2])
	case "bench":
		n, _ := strconv.Atoi(os.Args[3])
		bench(os.Args[2], n)
	case "compact":
		txMax, _ := strconv.ParseInt(os.Args[4], 10, 64)
		ps, _ := strconv.Atoi(os.Args[5])
		must(compact(os.Args[2], os.Args[3], txMax, ps))
	case "shape":
		s, err := shape(os.Args[2])
		must(err)
		os.Stdout.Write(s)
	case "verify":
		verify(os.Args[2:])
	case "touch":
		for _, f := range os.Args[2:] {
			fmt.Printf("#file %s\n", f)
			if err := touch(f); err != nil {
				fmt.Printf("#error %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
			}
			fmt.Println("#end")
		}
	default:
		die(fmt.Errorf("unknown command %s", os.Args[1]))
	}
}

func openRO(path string) *bolt.DB {
	db, err := bolt.Open(path, 0600, &bolt.Options{ReadOnly: true})
	if err != nil {
		die(err)
	}
	return db
}

func seqJSON(s uint64) string {
	if s <= 1<<53-1 {
		return strconv.FormatUint(s, 10)
	}
	return `"` + strconv.FormatUint(s, 10) + `"`
}

func dump(path string) {
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	defer w.Flush()
	if err := dumpTo(w, path); err != nil {
		die(err)
	}
}

func dumpTo(w *bufio.Writer, path string) error {
	db, err := bolt.Open(path, 0600, &bolt.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer db.Close()
	return dumpDB(w, db)
}

func dumpDB(w *bufio.Writer, db *bolt.DB) error {
	var walkBucket func(c *bolt.Cursor, open func(k []byte) *bolt.Bucket, path string)
	walkBucket = func(c *bolt.Cursor, open func(k []byte) *bolt.Bucket, path string) {
		for k, v := c.First(); k != nil; k, v = c.Next() {
			kh := hex.EncodeToString(k)
			w.WriteString(`{"path":[` + path + `],"key":"` + kh)
			if v == nil {
				if sub := open(k); sub != nil {
					w.WriteString(`","bucket":true,"sequence":` + seqJSON(sub.Sequence()) + "}\n")
					p := `"` + kh + `"`
					if path != "" {
						p = path + "," + p
					}
					walkBucket(sub.Cursor(), sub.Bucket, p)
					continue
				}
			}
			w.WriteString(`","value":"` + hex.EncodeToString(v) + "\"}\n")
		}
	}
	return db.View(func(tx *bolt.Tx) error {
		walkBucket(tx.Cursor(), tx.Bucket, "")
		return nil
	})
}

func check(path string) {
	db := openRO(path)
	defer db.Close()
	n := 0
	err := db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			fmt.Println(err)
			n++
		}
		return nil
	})
	if err != nil {
		die(err)
	}
	if n > 0 {
		fmt.Printf("%d errors found\n", n)
		os.Exit(1)
	}
	fmt.Println("OK")
}

func pct(a, b int) int {
	if b == 0 {
		return 0
	}
	return int(float32(a) * 100.0 / float32(b))
}

func stats(path string) {
	db := openRO(path)
	defer db.Close()
	var s bolt.BucketStats
	count := 0
	_ = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			s.Add(b.Stats())
			count++
			return nil
		})
	})
	fmt.Printf("Aggregate statistics for %d buckets\n\n", count)
	fmt.Println("Page count statistics")
	fmt.Printf("\tNumber of logical branch pages: %d\n", s.BranchPageN)
	fmt.Printf("\tNumber of physical branch overflow pages: %d\n", s.BranchOverflowN)
	fmt.Printf("\tNumber of logical leaf pages: %d\n", s.LeafPageN)
	fmt.Printf("\tNumber of physical leaf overflow pages: %d\n", s.LeafOverflowN)
	fmt.Println("Tree statistics")
	fmt.Printf("\tNumber of keys/value pairs: %d\n", s.KeyN)
	fmt.Printf("\tNumber of levels in B+tree: %d\n", s.Depth)
	fmt.Println("Page size utilization")
	fmt.Printf("\tBytes allocated for physical branch pages: %d\n", s.BranchAlloc)
	fmt.Printf("\tBytes actually used for branch data: %d (%d%%)\n", s.BranchInuse, pct(s.BranchInuse, s.BranchAlloc))
	fmt.Printf("\tBytes allocated for physical leaf pages: %d\n", s.LeafAlloc)
	fmt.Printf("\tBytes actually used for leaf data: %d (%d%%)\n", s.LeafInuse, pct(s.LeafInuse, s.LeafAlloc))
	fmt.Println("Bucket statistics")
	fmt.Printf("\tTotal number of buckets: %d\n", s.BucketN)
	fmt.Printf("\tTotal number on inlined buckets: %d (%d%%)\n", s.InlineBucketN, pct(s.InlineBucketN, s.BucketN))
	fmt.Printf("\tBytes used for inlined buckets: %d (%d%%)\n", s.InlineBucketInuse, pct(s.InlineBucketInuse, s.LeafInuse))
}

func walk(path string) {
	db := openRO(path)
	defer db.Close()
	keys, bytes := 0, 0
	var visit func(b *bolt.Bucket)
	visit = func(b *bolt.Bucket) {
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			keys++
			bytes += len(k) + len(v)
			if v == nil {
				if sub := b.Bucket(k); sub != nil {
					visit(sub)
				}
			}
		}
	}
	_ = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			keys++
			visit(b)
			return nil
		})
	})
	fmt.Printf("%d keys %d bytes\n", keys, bytes)
}

// --- generation ---------------------------------------------------------------------------

type gener struct {
	r *rand.Rand
}

func (g *gener) bytes(min, max int) []byte {
	n := min
	if max > min {
		n += g.r.Intn(max - min + 1)
	}
	b := make([]byte, n)
	g.r.Read(b)
	return b
}

func (g *gener) text(min, max int) []byte {
	const al = "abcdefghijklmnopqrstuvwxyz0123456789-_./:"
	n := min
	if max > min {
		n += g.r.Intn(max - min + 1)
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = al[g.r.Intn(len(al))]
	}
	return b
}

func (g *gener) key(binaryKeys bool) []byte {
	if binaryKeys {
		return g.bytes(1, 64)
	}
	return g.text(1, 40)
}

func must(err error) {
	if err != nil {
		die(err)
	}
}

func gen(out string, seed int64, scenario string, pageSize int) {
	os.Remove(out)
	opts := &bolt.Options{PageSize: pageSize}
	if scenario == "nofreelist" {
		opts.NoFreelistSync = true
	}
	db, err := bolt.Open(out, 0600, opts)
	must(err)
	defer db.Close()
	g := &gener{r: rand.New(rand.NewSource(seed))}
	update := func(fn func(tx *bolt.Tx) error) { must(db.Update(fn)) }

	// fill puts n random entries (values of vmin..vmax bytes) into b.
	fill := func(b *bolt.Bucket, n, vmin, vmax int, binaryKeys bool) {
		for i := 0; i < n; i++ {
			v := g.text(vmin, vmax)
			if binaryKeys {
				v = g.bytes(vmin, vmax)
			}
			must(b.Put(g.key(binaryKeys), v))
		}
	}

	switch scenario {
	case "basic":
		update(func(tx *bolt.Tx) error {
			for i := 0; i < 5; i++ {
				b, err := tx.CreateBucketIfNotExists(g.text(3, 12))
				must(err)
				fill(b, 50+g.r.Intn(500), 0, 200, false)
			}
			return nil
		})
	case "deep":
		update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket([]byte("root"))
			must(err)
			depth := 30 + g.r.Intn(40)
			for d := 0; d < depth; d++ {
				fill(b, g.r.Intn(20), 0, 50, false)
				if d%7 == 3 {
					fill(b, 200, 10, 100, false) // some levels are not inline
				}
				nb, err := b.CreateBucketIfNotExists([]byte(fmt.Sprintf("level-%03d", d)))
				must(err)
				b = nb
			}
			fill(b, 5, 0, 10, false)
			return nil
		})
	case "many":
		for t := 0; t < 3; t++ {
			update(func(tx *bolt.Tx) error {
				for i := 0; i < 1200; i++ {
					b, err := tx.CreateBucketIfNotExists([]byte(fmt.Sprintf("bucket-%d-%06d", t, g.r.Intn(1000000))))
					must(err)
					fill(b, g.r.Intn(4), 0, 30, false)
				}
				return nil
			})
		}
	case "inline":
		update(func(tx *bolt.Tx) error {
			top, err := tx.CreateBucket([]byte("top"))
			must(err)
			for i := 0; i < 400; i++ {
				if g.r.Intn(2) == 0 {
					must(top.Put(append([]byte("v-"), g.text(1, 20)...), g.text(0, 40)))
					continue
				}
				b, err := top.CreateBucketIfNotExists(append([]byte("b-"), g.text(1, 20)...))
				must(err)
				fill(b, g.r.Intn(6), 0, 20, g.r.Intn(3) == 0)
				if g.r.Intn(10) == 0 {
					s, err := b.CreateBucketIfNotExists([]byte{0xfe, 0x73})
					must(err)
					fill(s, 3, 0, 10, false)
				}
			}
			return nil
		})
	case "bigvalues":
		update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket([]byte("blobs"))
			must(err)
			for i := 0; i < 60; i++ {
				sizes := []int{0, 1, 100, pageSize - 50, pageSize, 3 * pageSize, 100000}
				n := sizes[g.r.Intn(len(sizes))]
				must(b.Put([]byte(fmt.Sprintf("blob-%04d", i)), g.bytes(n, n)))
			}
			must(b.Put([]byte("empty"), []byte{}))
			return nil
		})
	case "binary":
		update(func(tx *bolt.Tx) error {
			for i := 0; i < 4; i++ {
				b, err := tx.CreateBucketIfNotExists(g.bytes(1, 16))
				must(err)
				fill(b, 300+g.r.Intn(700), 0, 300, true)
				must(b.Put([]byte{0}, []byte{0xff}))
				must(b.Put([]byte{0xff, 0xff}, []byte{}))
			}
			return nil
		})
	case "deletes", "growshrink", "nofreelist":
		n := 4000
		if scenario == "growshrink" {
			n = 8000
		}
		var keys [][]byte
		update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("data"))
			must(err)
			for i := 0; i < n; i++ {
				k := g.text(8, 24)
				keys = append(keys, k)
				must(b.Put(k, g.text(50, 400)))
			}
			return nil
		})
		keep := 0.3
		if scenario == "growshrink" {
			keep = 0.02
		}
		for round := 0; round < 4; round++ {
			update(func(tx *bolt.Tx) error {
				b := tx.Bucket([]byte("data"))
				for _, k := range keys {
					if g.r.Float64() > keep {
						must(b.Delete(k))
					}
				}
				nb, err := tx.CreateBucketIfNotExists([]byte(fmt.Sprintf("round-%d", round)))
				must(err)
				fill(nb, 20+g.r.Intn(200), 0, 100, false)
				if round == 2 {
					must(tx.DeleteBucket([]byte("round-0")))
				}
				return nil
			})
		}
	case "bigfreelist":
		// More than 0xFFFF free pages: the freelist page's count field holds the 0xFFFF escape and
		// the real count is the first element. One value spanning ~70,000 overflow pages, then
		// deleted, frees them all at once; a small bucket keeps the file non-empty.
		n := 70000 * pageSize
		update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket([]byte("big"))
			must(err)
			must(b.Put([]byte("huge"), g.bytes(n, n)))
			fill(b, 50, 0, 100, false)
			return nil
		})
		update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("big")).Delete([]byte("huge")) })
	case "sequences":
		update(func(tx *bolt.Tx) error {
			for i := 0; i < 20; i++ {
				b, err := tx.CreateBucketIfNotExists(g.text(2, 10))
				must(err)
				switch i % 4 {
				case 0:
					for j := 0; j < 5; j++ {
						_, _ = b.NextSequence()
					}
				case 1:
					must(b.SetSequence(1<<53 + uint64(g.r.Intn(1000))))
				case 2:
					must(b.SetSequence(^uint64(0)))
				}
				fill(b, g.r.Intn(300), 0, 80, false)
			}
			return nil
		})
	case "mixed":
		for t := 0; t < 10; t++ {
			update(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucketIfNotExists([]byte("mixed"))
				must(err)
				fill(b, 100, 0, 2000, g.r.Intn(2) == 0)
				c := b.Cursor()
				for k, v := c.First(); k != nil; k, v = c.Next() {
					if v != nil && g.r.Intn(5) == 0 {
						must(c.Delete())
					}
				}
				s, err := b.CreateBucketIfNotExists(append([]byte{0xfe, 0xfe}, g.text(1, 6)...))
				must(err)
				fill(s, g.r.Intn(40), 0, 100, false)
				return nil
			})
		}
	case "containerd":
		// containerd's metadata schema: varints, Go binary times, nested label buckets. The
		// expected decoded values are printed as JSON on stdout for the test to compare.
		expect := map[string]interface{}{}
		update(func(tx *bolt.Tx) error {
			v1, err := tx.CreateBucket([]byte("v1"))
			must(err)
			must(v1.Put([]byte("version"), varint(4)))
			expect["version"] = 4
			ns, err := v1.CreateBucket([]byte("moby"))
			must(err)
			images, err := ns.CreateBucket([]byte("images"))
			must(err)
			for i := 0; i < 3; i++ {
				name := fmt.Sprintf("docker.io/library/img%d:latest", i)
				img, err := images.CreateBucket([]byte(name))
				must(err)
				t := time.Unix(1700000000+int64(g.r.Intn(100000000)), int64(g.r.Intn(1000000000))).UTC()
				tb, err := t.MarshalBinary()
				must(err)
				must(img.Put([]byte("createdat"), tb))
				must(img.Put([]byte("updatedat"), tb))
				target, err := img.CreateBucket([]byte("target"))
				must(err)
				size := int64(g.r.Intn(1 << 30))
				must(target.Put([]byte("size"), varint(size)))
				must(target.Put([]byte("digest"), []byte("sha256:"+strings.Repeat("ab", 32))))
				must(target.Put([]byte("mediatype"), []byte("application/vnd.oci.image.index.v1+json")))
				labels, err := img.CreateBucket([]byte("labels"))
				must(err)
				must(labels.Put([]byte("org.example/k"), []byte(fmt.Sprintf("v%d", i))))
				expect[name] = map[string]interface{}{"createdat": t.Format(time.RFC3339Nano), "size": size}
			}
			return nil
		})
		out, _ := json.Marshal(expect)
		fmt.Println(string(out))
		// Enough freed pages that the freelist count overflows u16 (the 0xFFFF escape).
		for t := 0; t < 8; t++ {
			update(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucketIfNotExists([]byte(fmt.Sprintf("chunk-%d", t)))
				must(err)
				for i := 0; i < 10; i++ {
					must(b.Put([]byte(fmt.Sprintf("k%04d", i)), g.bytes(1000*pageSize, 1000*pageSize)))
				}
				return nil
			})
		}
		update(func(tx *bolt.Tx) error {
			for t := 0; t < 7; t++ {
				must(tx.DeleteBucket([]byte(fmt.Sprintf("chunk-%d", t))))
			}
			return nil
		})
	case "nested":
		genNested(db, seed)
	default:
		die(fmt.Errorf("unknown scenario %s", scenario))
	}
}

// genNested writes a chain of N nested buckets (N is the argument after PAGESIZE) for the walks
// that must not recurse on bucket depth: "nest" at the top, then N buckets named "b", each inside
// the one before. Levels 1, N/3, 2N/3 and N hold a value "v" ("seed S level D") and an inline
// bucket "a" (it sorts before "b") with a value "x" (0x00 "x" S D); every 1000th level from 7 has
// a sequence. Then it
// prints, as `dump` would, the records of the last 10 levels (below level N-10): the full dump
// repeats the path in every record, so it grows as N², and a test at a large N compares this tail.
func genNested(db *bolt.DB, seed int64) {
	n, err := strconv.Atoi(os.Args[6])
	must(err)
	special := map[int]bool{1: true, n / 3: true, 2 * n / 3: true, n: true}
	must(db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("nest"))
		must(err)
		for d := 1; d <= n; d++ {
			b, err = b.CreateBucket([]byte("b"))
			must(err)
			if d%1000 == 7 {
				must(b.SetSequence(uint64(d)))
			}
			if special[d] {
				must(b.Put([]byte("v"), []byte(fmt.Sprintf("seed %d level %d", seed, d))))
				a, err := b.CreateBucket([]byte("a"))
				must(err)
				must(a.Put([]byte("x"), []byte(fmt.Sprintf("\x00x %d %d", seed, d))))
			}
		}
		return nil
	}))
	from := n - 10
	if from < 0 {
		from = 0
	}
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	var walk func(b *bolt.Bucket, path string)
	walk = func(b *bolt.Bucket, path string) {
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			kh := hex.EncodeToString(k)
			w.WriteString(`{"path":[` + path + `],"key":"` + kh)
			if v == nil {
				sub := b.Bucket(k)
				w.WriteString(`","bucket":true,"sequence":` + seqJSON(sub.Sequence()) + "}\n")
				walk(sub, path+`,"`+kh+`"`)
				continue
			}
			w.WriteString(`","value":"` + hex.EncodeToString(v) + "\"}\n")
		}
	}
	must(db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("nest"))
		path := `"` + hex.EncodeToString([]byte("nest")) + `"`
		for d := 1; d <= from; d++ {
			b = b.Bucket([]byte("b"))
			path += `,"62"`
		}
		walk(b, path)
		return nil
	}))
}

func varint(n int64) []byte {
	b := make([]byte, binary.MaxVarintLen64)
	return b[:binary.PutVarint(b, n)]
}

// bench writes n keys in 20 buckets, about 250 bytes a key, in key order, for the benchmarks.
func bench(out string, n int) {
	os.Remove(out)
	db, err := bolt.Open(out, 0600, &bolt.Options{NoSync: true})
	must(err)
	defer db.Close()
	g := &gener{r: rand.New(rand.NewSource(1))}
	const buckets = 20
	per := n / buckets
	for b := 0; b < buckets; b++ {
		for start := 0; start < per; start += 50000 {
			must(db.Update(func(tx *bolt.Tx) error {
				bk, err := tx.CreateBucketIfNotExists([]byte(fmt.Sprintf("bucket-%02d", b)))
				must(err)
				bk.FillPercent = 0.9
				for i := start; i < start+50000 && i < per; i++ {
					must(bk.Put([]byte(fmt.Sprintf("key-%010d", i)), g.bytes(150, 250)))
				}
				return nil
			}))
		}
	}
}

// --- compaction, shape and batch verification -------------------------------------------------

// compact does what `bbolt compact -o DST SRC` does (cmd/bbolt: the source opened read-only, a new
// destination with the source's mode, bolt.Compact with -tx-max-size, default 65536), with the
// destination's page size given (0: bbolt's default, the OS page size).
func compact(dst, src string, txMax int64, pageSize int) error {
	return compactWith(dst, src, txMax, &bolt.Options{PageSize: pageSize})
}

func compactWith(dst, src string, txMax int64, opts *bolt.Options) error {
	s, err := bolt.Open(src, 0400, &bolt.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer s.Close()
	return compactDB(dst, s, txMax, opts)
}

func compactDB(dst string, s *bolt.DB, txMax int64, opts *bolt.Options) error {
	fi, err := os.Stat(s.Path())
	if err != nil {
		return err
	}
	os.Remove(dst)
	d, err := bolt.Open(dst, fi.Mode(), opts)
	if err != nil {
		return err
	}
	defer d.Close()
	return bolt.Compact(d, s, txMax)
}

// shape prints every bucket (depth-first in key order) and its pages in preorder, without page ids:
// type, element count, overflow, bytes used and first key. Two files with equal shapes hold the
// same pages, split at the same keys, up to page numbering. The bytes are parsed directly from the
// file (the meta with the higher valid txid), so bbolt's own allocation order does not matter.
func shape(path string) ([]byte, error) {
	f, err := ioutil.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(f) < 80 {
		return nil, fmt.Errorf("%s: short file", path)
	}
	ps := int(binary.LittleEndian.Uint32(f[24:]))
	if ps < 512 || len(f) < 2*ps {
		return nil, fmt.Errorf("%s: short file", path)
	}
	meta := 0
	if binary.LittleEndian.Uint64(f[ps+64:]) > binary.LittleEndian.Uint64(f[64:]) {
		meta = ps
	}
	root := binary.LittleEndian.Uint64(f[meta+32:])
	var out bytes.Buffer
	page := func(id uint64) []byte {
		off := int(id) * ps
		ovf := int(binary.LittleEndian.Uint32(f[off+12:]))
		return f[off : off+(ovf+1)*ps]
	}
	type ent struct {
		flags      uint32
		key, value []byte
	}
	leafEntries := func(p []byte) []ent {
		n := int(binary.LittleEndian.Uint16(p[10:]))
		es := make([]ent, n)
		for i := 0; i < n; i++ {
			e := 16 + 16*i
			pos := e + int(binary.LittleEndian.Uint32(p[e+4:]))
			ks := int(binary.LittleEndian.Uint32(p[e+8:]))
			vs := int(binary.LittleEndian.Uint32(p[e+12:]))
			es[i] = ent{binary.LittleEndian.Uint32(p[e:]), p[pos : pos+ks], p[pos+ks : pos+ks+vs]}
		}
		return es
	}
	var bucket func(path string, rootID uint64, seq uint64, inline []byte)
	var pages func(id uint64, depth int, subs *[]ent)
	pages = func(id uint64, depth int, subs *[]ent) {
		p := page(id)
		n := int(binary.LittleEndian.Uint16(p[10:]))
		ovf := binary.LittleEndian.Uint32(p[12:])
		if binary.LittleEndian.Uint16(p[8:]) == 0x01 {
			used, first := 16+16*n, ""
			var kids []uint64
			for i := 0; i < n; i++ {
				e := 16 + 16*i
				pos := e + int(binary.LittleEndian.Uint32(p[e:]))
				ks := int(binary.LittleEndian.Uint32(p[e+4:]))
				used += ks
				if i == 0 {
					first = hex.EncodeToString(p[pos : pos+ks])
				}
				kids = append(kids, binary.LittleEndian.Uint64(p[e+8:]))
			}
			fmt.Fprintf(&out, "  %d branch n=%d ovf=%d used=%d first=%s\n", depth, n, ovf, used, first)
			for _, k := range kids {
				pages(k, depth+1, subs)
			}
			return
		}
		es := leafEntries(p)
		used, first := 16+16*n, ""
		for i, e := range es {
			used += len(e.key) + len(e.value)
			if i == 0 {
				first = hex.EncodeToString(e.key)
			}
			if e.flags&1 != 0 {
				*subs = append(*subs, e)
			}
		}
		fmt.Fprintf(&out, "  %d leaf n=%d ovf=%d used=%d first=%s\n", depth, n, ovf, used, first)
	}
	bucket = func(path string, rootID uint64, seq uint64, inline []byte) {
		var subs []ent
		if rootID == 0 {
			es := leafEntries(inline)
			used := 16 + 16*len(es)
			for _, e := range es {
				used += len(e.key) + len(e.value)
			}
			fmt.Fprintf(&out, "B %s seq=%d inline n=%d used=%d\n", path, seq, len(es), used)
			return
		}
		fmt.Fprintf(&out, "B %s seq=%d\n", path, seq)
		pages(rootID, 0, &subs)
		for _, e := range subs {
			p := hex.EncodeToString(e.key)
			if path != "" {
				p = path + "/" + p
			}
			r := binary.LittleEndian.Uint64(e.value[0:])
			s := binary.LittleEndian.Uint64(e.value[8:])
			bucket(p, r, s, e.value[16:])
		}
	}
	bucket("", root, binary.LittleEndian.Uint64(f[meta+40:]), nil)
	return out.Bytes(), nil
}

// verify checks, dumps and (with -shape) compares the shape of each file with that of
// Compact(file, 0) at the same page size, printing one block per file:
//
//	#file PATH
//	<tx.Check() errors, then "N errors found", or "OK">
//	<the dump, as the dump command prints it>
//	#shape equal | #shape differs, then ours, "#compact", Go's
//	#end
func verify(args []string) {
	withShape, withHash, withTouch := false, false, false
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "-shape":
			withShape = true
		case "-hash":
			withHash = true
		case "-touch":
			withTouch = true
		default:
			die(fmt.Errorf("verify: unknown flag %s", args[0]))
		}
		args = args[1:]
	}
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	defer w.Flush()
	// bbolt's init() fsyncs a new file whatever the options: on tmpfs that costs nothing.
	base := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		base = "/dev/shm"
	}
	tmp, err := ioutil.TempDir(base, "boltoracle-verify-")
	must(err)
	defer os.RemoveAll(tmp)
	for _, path := range args {
		fmt.Fprintf(w, "#file %s\n", path)
		if err := verifyOne(w, path, withShape, withHash, filepath.Join(tmp, "compact.db")); err != nil {
			fmt.Fprintf(w, "#error %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		} else if withTouch {
			if err := touchCopy(w, path, filepath.Join(tmp, "touch.db")); err != nil {
				fmt.Fprintf(w, "#error touch: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
			}
		}
		fmt.Fprintln(w, "#end")
	}
}

func verifyOne(w *bufio.Writer, path string, withShape, withHash bool, tmp string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	db, err := bolt.Open(path, 0600, &bolt.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer db.Close()
	n := 0
	err = db.View(func(tx *bolt.Tx) error {
		for e := range tx.Check() {
			fmt.Fprintln(w, e)
			n++
		}
		return nil
	})
	if err != nil {
		return err
	}
	if n > 0 {
		fmt.Fprintf(w, "%d errors found\n", n)
	} else {
		fmt.Fprintln(w, "OK")
	}
	if withHash {
		h := sha256.New()
		cw := &countWriter{w: h}
		bw := bufio.NewWriterSize(cw, 1<<16)
		if err := dumpDB(bw, db); err != nil {
			return err
		}
		bw.Flush()
		fmt.Fprintf(w, "#dump %x %d\n", h.Sum(nil), cw.n)
	} else if err := dumpDB(w, db); err != nil {
		return err
	}
	if !withShape {
		return nil
	}
	// No fsyncs: the copy is read back at once and removed (the layout does not depend on them).
	if err := compactDB(tmp, db, 0, &bolt.Options{PageSize: db.Info().PageSize, NoSync: true, NoGrowSync: true}); err != nil {
		return err
	}
	ours, err := shape(path)
	if err != nil {
		return err
	}
	theirs, err := shape(tmp)
	os.Remove(tmp)
	if err != nil {
		return err
	}
	if bytes.Equal(ours, theirs) {
		fmt.Fprintln(w, "#shape equal")
		return nil
	}
	fmt.Fprintln(w, "#shape differs")
	w.Write(ours)
	fmt.Fprintln(w, "#compact")
	w.Write(theirs)
	return nil
}

type countWriter struct {
	w interface{ Write([]byte) (int, error) }
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func touchCopy(w *bufio.Writer, path, tmp string) error {
	b, err := ioutil.ReadFile(path)
	if err != nil {
		return err
	}
	if err := ioutil.WriteFile(tmp, b, 0600); err != nil {
		return err
	}
	defer os.Remove(tmp)
	w.Flush()
	// touch prints its check result on stdout: flushed in order with ours
	fmt.Print("#touch ")
	return touch(tmp)
}

// touch writes to a file the way a daemon does after opening it: new keys in a new bucket, then
// deletes (pages freed, the freelist used), in separate transactions, then checks it.
func touch(path string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	db, err := bolt.Open(path, 0600, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("\xff-touch"))
		if err != nil {
			return err
		}
		for i := 0; i < 300; i++ {
			if err := b.Put([]byte(fmt.Sprintf("k%06d", i)), bytes.Repeat([]byte{byte(i)}, i%300)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("\xff-touch"))
		for i := 0; i < 300; i += 2 {
			if err := b.Delete([]byte(fmt.Sprintf("k%06d", i))); err != nil {
				return err
			}
		}
		c := tx.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if b := tx.Bucket(k); b != nil && string(k) != "\xff-touch" {
				if fk, v := b.Cursor().First(); fk != nil && v != nil {
					return b.Delete(fk)
				}
			}
		}
		return nil
	}); err != nil {
		return err
	}
	n := 0
	err = db.View(func(tx *bolt.Tx) error {
		for e := range tx.Check() {
			fmt.Println(e)
			n++
		}
		return nil
	})
	if err != nil {
		return err
	}
	if n > 0 {
		fmt.Printf("%d errors found\n", n)
	} else {
		fmt.Println("OK")
	}
	return nil
}
