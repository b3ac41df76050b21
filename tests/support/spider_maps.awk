# spider_maps.awk -- builds the fake server's answer maps for the Spider dev
# set: the SQL agent's map (question -> gold SQL in a ```sql fence) and the
# intent agent's map.  Variables: gold (dev_gold.sql), mode ("oracle": every
# question answered with its gold SQL; "subset": questions with index % 10
# == 3, 5, 7 answered wrongly and % 10 == 9 classified as chitchat),
# sqlmap and intmap (output paths).  Input: dev.json.
# Used by tests/spider/test_eval.sh and tests/bench/run_batch_e2e.sh.
function jesc(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); gsub(/\t/, "\\t", s); return s }
	BEGIN {
		while ((getline line < gold) > 0) {
			sub(/\r$/, "", line)
			if (line == "") continue
			sub(/\t[^\t]*$/, "", line)
			g[n++] = line
		}
	}
	/^        "question": "/ { q = $0; sub(/^        "question": /, "", q); sub(/,$/, "", q); qs[m++] = q }
	END {
		if (m != n || m == 0) { print "dev.json has " m " questions, dev_gold.sql " n " lines" > "/dev/stderr"; exit 1 }
		printf "{" > sqlmap
		printf "{" > intmap
		k = 0
		for (i = 0; i < m; i++) {
			sql = "```sql\\n" jesc(g[i]) "\\n```"
			if (mode == "subset" && i % 10 == 3) sql = "```sql\\nSELECT 'convbi-wrong' AS w\\n```"
			if (mode == "subset" && i % 10 == 5) sql = "```sql\\nSELECT no_such_column FROM no_such_table\\n```"
			if (mode == "subset" && i % 10 == 7) sql = "```sql\\nDELETE FROM no_such_table\\n```"
			printf "%s\n%s: \"%s\"", (i ? "," : ""), qs[i], sql > sqlmap
			if (mode == "subset" && i % 10 == 9) {
				printf "%s\n%s: \"{\\\"intent\\\": \\\"chitchat\\\", \\\"standalone_question\\\": \\\"\\\", \\\"reply\\\": \\\"Hi!\\\"}\"", (k++ ? "," : ""), qs[i] > intmap
			}
		}
		print "}" > sqlmap
		print "}" > intmap
	}
