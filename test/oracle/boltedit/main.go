// boltedit changes a bbolt file the way a Go program (dockerd, BuildKit) would, for tests that
// prepare or tamper with real databases. It is built from Debian's golang-github-coreos-bbolt-dev
// in GOPATH mode and is never part of the product.
//
//	boltedit FILE < OPS.json
//
// OPS is a JSON array, applied in one transaction, in order:
//
//	{"op":"put","path":["b1","b2"],"key":"k","value":"v"}   (buckets made as needed)
//	{"op":"delete","path":[...],"key":"k"}
//	{"op":"deleteBucket","path":[...],"key":"name"}
//	{"op":"createBucket","path":[...]}
//
// Keys and values are strings (UTF-8), or hex when the field is "keyHex"/"valueHex".
package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
)

type op struct {
	Op       string   `json:"op"`
	Path     []string `json:"path"`
	Key      *string  `json:"key"`
	KeyHex   *string  `json:"keyHex"`
	Value    *string  `json:"value"`
	ValueHex *string  `json:"valueHex"`
}

func bytesOf(s *string, h *string) []byte {
	if h != nil {
		b, err := hex.DecodeString(*h)
		if err != nil {
			die(err)
		}
		return b
	}
	if s != nil {
		return []byte(*s)
	}
	return nil
}

func die(err error) {
	fmt.Fprintln(os.Stderr, "boltedit:", err)
	os.Exit(2)
}

func main() {
	if len(os.Args) != 2 {
		die(fmt.Errorf("usage: boltedit FILE < OPS.json"))
	}
	var ops []op
	if err := json.NewDecoder(os.Stdin).Decode(&ops); err != nil {
		die(err)
	}
	db, err := bolt.Open(os.Args[1], 0600, nil)
	if err != nil {
		die(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		for _, o := range ops {
			var b *bolt.Bucket
			for i, name := range o.Path {
				var nb *bolt.Bucket
				var err error
				if i == 0 {
					nb, err = tx.CreateBucketIfNotExists([]byte(name))
				} else {
					nb, err = b.CreateBucketIfNotExists([]byte(name))
				}
				if err != nil {
					return err
				}
				b = nb
			}
			k := bytesOf(o.Key, o.KeyHex)
			switch o.Op {
			case "put":
				if b == nil {
					return fmt.Errorf("put needs a bucket path")
				}
				v := bytesOf(o.Value, o.ValueHex)
				if v == nil {
					v = []byte{}
				}
				if err := b.Put(k, v); err != nil {
					return err
				}
			case "delete":
				if err := b.Delete(k); err != nil {
					return err
				}
			case "deleteBucket":
				var err error
				if b == nil {
					err = tx.DeleteBucket(k)
				} else {
					err = b.DeleteBucket(k)
				}
				if err != nil {
					return err
				}
			case "createBucket":
			default:
				return fmt.Errorf("unknown op %q", o.Op)
			}
		}
		return nil
	})
	if err != nil {
		die(err)
	}
}
