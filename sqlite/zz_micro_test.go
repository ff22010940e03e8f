package sqlite

import (
	"context"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

func BenchmarkMicroInsert(b *testing.B) {
	for _, rowsPer := range []int{1, 8, 64} {
		b.Run(fmt.Sprint(rowsPer), func(b *testing.B) {
			db, err := Open(filepath.Join(b.TempDir(), "m.db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			w := db.w
			ctx := context.Background()
			var sb strings.Builder
			sb.WriteString("INSERT INTO receipts (" + receiptColumns + ") VALUES ")
			for i := range rowsPer {
				if i > 0 {
					sb.WriteString(",")
				}
				sb.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?)")
			}
			w.conn.ExecContext(ctx, "BEGIN IMMEDIATE")
			seq := 0
			body := strings.Repeat("x", 120)
			for b.Loop() {
				args := make([]any, 0, 9*rowsPer)
				for range rowsPer {
					h := sha256.Sum256([]byte(fmt.Sprint(seq)))
					args = append(args, seq, "2.0.0", "bench_event", "2025-01-01T00:00:00Z", []string{"system", "identity", "drill"}[seq%3], `["bench"]`, "blake3:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", body, h[:])
					seq++
				}
				if _, err := w.q.exec(sb.String(), args...); err != nil {
					b.Fatal(err)
				}
			}
			w.conn.ExecContext(ctx, "COMMIT")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(seq)/1000, "us/row")
		})
	}
}
