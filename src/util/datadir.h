/* datadir.h -- where this program's own files are (prompts, the sample
 * database, the page): the build tree for a program built there, else the
 * share folder of the prefix it is installed in. */
#ifndef CONVBI_UTIL_DATADIR_H
#define CONVBI_UTIL_DATADIR_H

enum datadir_file {
	DATADIR_PROMPTS,   /* the folder of the prompt templates */
	DATADIR_SAMPLE_DB, /* the bundled sample database */
	DATADIR_WEB        /* the folder of serve's page and OpenAPI document */
};

/* The path of what, never NULL.  A program whose code was loaded from the
 * build tree gets the source tree's prompts and page and the build's sample
 * database -- unless it is an install: code loaded from PREFIX/bin, PREFIX/lib
 * or PREFIX/lib/ARCH with PREFIX/share/convbi/prompts beside it gets
 * PREFIX/share/convbi/..., so an install made with `cmake --install --prefix
 * P` or moved whole finds its own files; when neither, the folder configured
 * at build time. */
const char *datadir_path(enum datadir_file what);

#endif
