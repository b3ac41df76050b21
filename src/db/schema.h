/* schema.h -- what a database holds, read once, rendered per question.
 *
 * schema_load opens the file on its own read-only connection (ro.h) and
 * reads every table and view (internal sqlite_* tables and the shadow
 * tables of FTS/R-Tree virtual tables left out): columns with declared
 * types, primary keys, foreign keys, a row count, and up to SCHEMA_SAMPLES
 * distinct sample values of each text column (generated columns included,
 * and marked).  A sample is read as a prefix of the cell through
 * incremental BLOB I/O, never the whole value, so a 300 MB cell costs a
 * page, not 300 MB; tables without rowid fall back to SQL under a 1 MB
 * value limit.  Views that expand to more than EXEC_VIEW_REFS_MAX table
 * references (views.h) keep no columns: expanding them is what takes
 * long.  Counting and sampling are
 * bounded: a count stops at SCHEMA_COUNT_CAP rows or SCHEMA_COUNT_MS and
 * is then a lower bound (rendered "~N+ rows"); sampling a column stops
 * after SCHEMA_SAMPLE_MS; past SCHEMA_LOAD_MS in all, remaining tables get
 * neither.  The result is immutable: callers load it once per database,
 * keep it, and may read it from several threads.
 *
 * schema_render turns it into compact DDL-like text for the SQL prompt
 * and, when that exceeds the budget, keeps what matters for the question
 * (see schema_render.c).
 */
#ifndef CONVBI_DB_SCHEMA_H
#define CONVBI_DB_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

#define SCHEMA_SAMPLES 5               /* distinct sample values per text column */
#define SCHEMA_SAMPLE_CHARS 40         /* characters kept of a sample value */
#define SCHEMA_COUNT_CAP 1000000       /* rows counted before giving "~N+" */
#define SCHEMA_COUNT_MS 200            /* time to count one table */
#define SCHEMA_SAMPLE_MS 50            /* time to sample one column */
#define SCHEMA_LOAD_MS 3000            /* time for all counts and samples */
#define SCHEMA_RANGE_MS 50             /* time to read one column's min..max */
#define SCHEMA_RANGE_CHARS 24          /* characters kept of a range's bound */
#define SCHEMA_SAMPLE_ROWS 1000        /* rows looked at for one column's samples */
#define SCHEMA_VALUE_MAX (1024 * 1024) /* SQLITE_LIMIT_LENGTH of the loader's connection */

struct schema_column {
	char *name;     /* owned */
	char *type;     /* owned declared type, "" when none */
	int pk;         /* 1-based position in the primary key, 0 = not in it */
	int notnull;    /* 1 = declared NOT NULL */
	int generated;  /* 1 = a generated column (VIRTUAL or STORED) */
	char **samples; /* owned: nsamples values, each at most SCHEMA_SAMPLE_CHARS
	                    characters (a cut one ends in "…") */
	int nsamples;
	char *range;   /* owned: "min..max" of a numeric or date-like column
	                    (keys left out), NULL when not known; "~min..max"
	                    when read from PostgreSQL's statistics (a sample,
	                    as of the last ANALYZE), not from the rows */
	char *comment; /* owned: the column's comment (PostgreSQL), or NULL */
};

struct schema_fk {
	int id;       /* the columns of one composite key share an id */
	char *from;   /* owned: the column in this table */
	char *table;  /* owned: the referenced table */
	char *schema; /* owned: the referenced table's schema (PostgreSQL), or NULL */
	char *to;     /* owned: the referenced column; NULL = its primary key */
};

struct schema_table {
	char *name;                 /* owned */
	int is_view;                /* 1 = a view (no row count, no samples) */
	struct schema_column *cols; /* owned, ncols entries */
	int ncols;
	struct schema_fk *fks; /* owned, nfks entries, ordered by id */
	int nfks;
	int64_t rows;       /* row count; -1 = not counted */
	int rows_cut;       /* 1 = rows is a lower bound (cap or time) */
	int rows_estimated; /* 1 = rows is the planner's estimate (PostgreSQL) */
	char *schema;       /* owned: the schema (PostgreSQL), or NULL */
	char *comment;      /* owned: the table's comment (PostgreSQL), or NULL */
};

struct schema {
	struct schema_table *tables; /* owned, in creation order */
	size_t ntables;
};

/* Loads the schema of the SQLite file at db_path.  Returns CONVBI_OK and
 * *out (free with schema_free), or CONVBI_EDB (the file cannot be opened
 * or read: the message names it and the fix), EINVAL, ENOMEM; *out is
 * NULL on failure. */
int schema_load(struct schema **out, const char *db_path, struct err *err);

/* Frees s; accepts NULL. */
void schema_free(struct schema *s);

/* The number of tables and views. */
size_t schema_table_count(const struct schema *s);

/* The table or view named name (ASCII case-insensitive), borrowed from s,
 * or NULL. */
const struct schema_table *schema_find(const struct schema *s, const char *name);

/* Appends the schema as compact DDL-like text, at most budget_bytes bytes:
 *   CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER
 *   REFERENCES customers(id), status TEXT); -- 1234 rows; status: 'paid','shipped'
 * one line per table.  When everything does not fit, sample values are
 * dropped first (kept for the most relevant tables while room remains),
 * then the least relevant tables, and a last line names the omitted
 * tables (or counts them when the names do not fit).  When not even half
 * of the tables fit without samples, the less relevant ones that fit are
 * named with their columns only ("CREATE TABLE t (a, b); -- names only").
 * Relevance to question (may be NULL) is word overlap, with plural
 * stemming, between the question and table names, column names and sample
 * values; tables on foreign-key paths between relevant tables, their
 * direct neighbours and the neighbours of those are kept next.  Returns CONVBI_OK, ENOMEM, or ETOOBIG when
 * out's own cap is reached (out then keeps what it held). */
int schema_render(struct buf *out, const struct schema *s, const char *question, size_t budget_bytes);

/* 1 when column c of t is a key: an integer primary key of its own, in
 * a foreign key, or named like one ("id", "x_id", "xId"). */
int schema_column_is_key(const struct schema_table *t, const struct schema_column *c);

/* 1 when a declared column type has TEXT affinity (or none, which holds
 * anything): it names CHAR, CLOB or TEXT. */
int schema_type_is_text(const char *type);

/* Stored values a question names (from the value index, vindex.h). */
struct ground_value {
	char *table;  /* owned */
	char *column; /* owned */
	char *value;  /* owned, as stored */
	double score; /* higher = a closer match */
};

struct ground {
	struct ground_value *v; /* owned, n entries, best first */
	int n, cap;
};

#define GROUND_INIT        \
	{                  \
		NULL, 0, 0 \
	}

/* Appends one value (copied) to g.  Returns CONVBI_OK or ENOMEM. */
int ground_add(struct ground *g, const char *table, const char *column, const char *value, double score);
/* Frees what g holds and empties it; accepts NULL. */
void ground_release(struct ground *g);

/* schema_render, naming the values of g (may be NULL) per column ahead of
 * the sample values (`-- country: 'Japan','United States'`): matched
 * values stay with a kept table even when samples are dropped for the
 * budget, and a table holding one counts as relevant. */
int schema_render_grounded(struct buf *out, const struct schema *s, const char *question, const struct ground *g,
                           size_t budget_bytes);

/* Appends one table's line as schema_render writes it, with its sample
 * values when `samples` is non-zero.  Returns CONVBI_OK, ENOMEM or
 * ETOOBIG from out (out may then hold part of the line). */
int schema_render_table(struct buf *out, const struct schema_table *t, int samples);
/* "customers, orders, \"Odd Name\"": every table and view name, quoted
 * as in schema_render (control characters flattened), for the intent
 * prompt.  Returns CONVBI_OK or the buffer's error. */
int schema_table_list(struct buf *out, const struct schema *s);

#endif
