/* datadir.c -- where this program's own files are (see datadir.h).  The
 * answer is worked out once: an installed program must never read a build
 * tree that happens to exist on the machine (edits there would change it),
 * and a program in the build tree must read the tree it was built from.  An
 * install's layout (PREFIX/share/convbi beside the code's bin/ or lib/) is
 * looked for first, so an install made inside a build tree is one too. */
#include "util/datadir.h"

#include <link.h>
#include <stdint.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char paths[3][PATH_MAX];

/* 1 when path lies inside folder dir (or is it). */
static int inside(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return !strncmp(path, dir, n) && (path[n] == '/' || path[n] == '\0');
}

static void set_share(const char *share)
{
	snprintf(paths[DATADIR_PROMPTS], PATH_MAX, "%s/prompts", share);
	snprintf(paths[DATADIR_SAMPLE_DB], PATH_MAX, "%s/shop.db", share);
	snprintf(paths[DATADIR_WEB], PATH_MAX, "%s/web", share);
}

/* PREFIX/share/convbi for code loaded from PREFIX/bin, PREFIX/lib or
 * PREFIX/lib/ARCH: 1 and share filled when one of them has the prompts. */
static int share_beside(const char *code, char *share, size_t cap)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", code);
	for (int up = 1; up <= 3; up++) {
		char *slash = strrchr(dir, '/');
		if (!slash || slash == dir)
			return 0;
		*slash = '\0';
		if (up == 1)
			continue; /* the folder of the code itself: bin/ or lib/ */
		char probe[PATH_MAX + 64];
		snprintf(probe, sizeof probe, "%s/share/convbi/prompts/sql.txt", dir);
		if (access(probe, R_OK) == 0) {
			snprintf(share, cap, "%s/share/convbi", dir);
			return 1;
		}
	}
	return 0;
}

struct find_code {
	uintptr_t addr;
	char path[PATH_MAX];
	int found;
};

/* dl_iterate_phdr's callback: the object whose loaded segments hold addr.
 * The program itself has no name there (and dladdr's name for it is its
 * argv[0], which serve rewrites): /proc/self/exe names it. */
static int find_code_object(struct dl_phdr_info *info, size_t size, void *payload)
{
	(void)size;
	struct find_code *f = payload;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type != PT_LOAD || f->addr < lo || f->addr >= lo + ph->p_memsz)
			continue;
		const char *name = info->dlpi_name && *info->dlpi_name ? info->dlpi_name : "/proc/self/exe";
		f->found = realpath(name, f->path) != NULL;
		return 1;
	}
	return 0;
}

static void work_out(void)
{
	struct find_code f = {.addr = (uintptr_t)&datadir_path};
	dl_iterate_phdr(find_code_object, &f);
	const char *code = f.found ? f.path : "";
	char share[PATH_MAX], build[PATH_MAX];
	if (code[0] && share_beside(code, share, sizeof share)) {
		set_share(share);
	} else if (code[0] && realpath(CONVBI_BUILD_DIR, build) && inside(code, build)) {
		snprintf(paths[DATADIR_PROMPTS], PATH_MAX, "%s", CONVBI_PROMPTS_SRC_DIR);
		snprintf(paths[DATADIR_SAMPLE_DB], PATH_MAX, "%s", CONVBI_SAMPLE_DB_BUILD);
		snprintf(paths[DATADIR_WEB], PATH_MAX, "%s", CONVBI_WEB_SRC_DIR);
	} else {
		set_share(CONVBI_SHARE_INSTALL_DIR);
	}
}

const char *datadir_path(enum datadir_file what)
{
	pthread_once(&once, work_out);
	return paths[what];
}
