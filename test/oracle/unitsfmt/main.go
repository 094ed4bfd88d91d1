// unitsfmt prints sizes the way the docker CLI does (docker/go-units: decimal units, Go's fmt
// "%.*g"), one line per size read from stdin: "HumanSizeWithPrecision(size, 3)|HumanSize(size)".
// A test oracle, never part of the product.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
)

var units = []string{"B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"}

func human(size float64, precision int) string {
	i := 0
	for size >= 1000 && i < len(units)-1 {
		size = size / 1000
		i++
	}
	return fmt.Sprintf("%.*g%s", precision, size, units[i])
}

func main() {
	sc := bufio.NewScanner(os.Stdin)
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	for sc.Scan() {
		f, err := strconv.ParseFloat(sc.Text(), 64)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Fprintf(w, "%s|%s\n", human(f, 3), human(f, 4))
	}
}
