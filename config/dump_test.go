package config

import (
	"flag"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"reelfeed/event"
)

var dumpSections = flag.String("dump", "", "comma-separated top-level sections whose defaults TestDumpDefaults prints as YAML")

// TestDumpDefaults prints defaults as YAML, the starting point when a
// section of config.yaml is (re)written: go test ./config -run TestDumpDefaults -dump feed,recall
func TestDumpDefaults(t *testing.T) {
	if *dumpSections == "" {
		t.Skip("pass -dump SECTIONS")
	}
	def := Default()
	rv := reflect.ValueOf(def)
	for _, sec := range strings.Split(*dumpSections, ",") {
		for i := 0; i < rv.NumField(); i++ {
			if keyOf(rv.Type().Field(i)) == sec {
				fmt.Fprintf(os.Stdout, "%s:\n", sec)
				dumpValue(rv.Field(i), 1)
			}
		}
	}
}

func dumpValue(v reflect.Value, depth int) {
	ind := strings.Repeat("  ", depth)
	t := v.Type()
	switch {
	case t == weightsType:
		for ty := event.Type(0); ty < event.NumTypes; ty++ {
			fmt.Printf("%s%s: %v\n", ind, ty, v.Index(int(ty)).Interface())
		}
	case t.Kind() == reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if squashed(f) {
				dumpValue(v.Field(i), depth)
				continue
			}
			k := keyOf(f)
			if k == "" || k == "-" {
				continue
			}
			fv := v.Field(i)
			if scalar(fv) {
				fmt.Printf("%s%s: %s\n", ind, k, scalarString(fv))
				continue
			}
			if (fv.Kind() == reflect.Map || fv.Kind() == reflect.Slice) && fv.Len() == 0 {
				if fv.Kind() == reflect.Map {
					fmt.Printf("%s%s: {}\n", ind, k)
				} else {
					fmt.Printf("%s%s: []\n", ind, k)
				}
				continue
			}
			fmt.Printf("%s%s:\n", ind, k)
			dumpValue(fv, depth+1)
		}
	case t.Kind() == reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
		for _, k := range keys {
			ev := v.MapIndex(k)
			if scalar(ev) {
				fmt.Printf("%s%v: %s\n", ind, k, scalarString(ev))
			} else if (ev.Kind() == reflect.Slice || ev.Kind() == reflect.Map) && ev.Len() == 0 {
				fmt.Printf("%s%v: []\n", ind, k)
			} else {
				fmt.Printf("%s%v:\n", ind, k)
				dumpValue(ev, depth+1)
			}
		}
	case t.Kind() == reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			ev := v.Index(i)
			if scalar(ev) {
				fmt.Printf("%s- %s\n", ind, scalarString(ev))
			} else {
				fmt.Printf("%s-\n", ind)
				dumpValue(ev, depth+1)
			}
		}
	}
}

func scalar(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Struct, reflect.Map, reflect.Slice, reflect.Array:
		return v.Type() == timeType
	case reflect.Interface, reflect.Pointer:
		return v.IsNil()
	}
	return true
}

func scalarString(v reflect.Value) string {
	if v.Type() == durationType {
		return time.Duration(v.Int()).String()
	}
	switch v.Kind() {
	case reflect.String:
		if v.String() == "" {
			return `""`
		}
		return fmt.Sprintf("%q", v.String())
	case reflect.Interface, reflect.Pointer:
		return "null"
	}
	return fmt.Sprint(v.Interface())
}
