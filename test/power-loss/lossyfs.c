/*
 * lossyfs: a FUSE file system that loses what was not fsynced, for power-loss tests (the idea of
 * LazyFS, small and written for this project's tests).
 *
 *   lossyfs [--meta=strict|immediate] [--real-fsync] [--verbose] BACKING MOUNTPOINT [FUSE options]
 *
 * BACKING/root is what MOUNTPOINT shows; BACKING/.lossyfs holds what the file system needs to undo
 * metadata operations at a cut (hard links to unlinked or replaced files, directories whose creation
 * was undone). The backing directory stands for the disk: whatever reached it survives a cut.
 *
 * File data (write, truncate, ftruncate, fallocate, open with O_TRUNC) is held in memory, per inode,
 * in 4 KiB pages over the backing file, and reaches the backing file only when that file is fsynced
 * (fsync or fdatasync, either). Reads see it (read-your-writes) and getattr reports its size. Closing
 * a file does not write anything back, as a kernel's page cache does not at close.
 *
 * Metadata operations (create, mknod, mkdir, symlink, link, unlink, rmdir, rename) are applied to the
 * backing directory at once, and in --meta=strict (the default) each is also logged with what undoes
 * it: it becomes durable when the directory it changed has been fsynced (fsync of a directory fd:
 * FUSE's fsyncdir) after it; a file's own fsync does not make its name durable (POSIX, and what the
 * project assumes: src/runtime/durable-directory.ts). A rename changes two entries, each durable
 * with its own directory: a file whose new directory was fsynced but not its old one comes back
 * under both names; one whose old directory was fsynced but not its new one, under neither; a
 * renamed directory goes back whole unless its new parent was fsynced. A mkdir undone takes the
 * whole new directory with it (to BACKING/.lossyfs/lost), even what was durable inside it.
 * --meta=immediate makes every metadata operation durable at once (LazyFS's model). chmod, chown and
 * utimens are always immediate; so are the stash links themselves.
 *
 * The cut: write a command to MOUNTPOINT/.lossyfs-ctl (not listed in directories):
 *   "cut"               every unsynced page and truncation is dropped;
 *   "cut torn N"        the same, but the first N bytes (at most the write's length - 1) of the last
 *                       write that was not fsynced since reach the backing file: a torn write;
 *   "cut random SEED"   each unsynced page independently reaches the backing file or not;
 * then every metadata operation not yet durable is undone, newest first. "sync" instead writes
 * everything back and makes every name durable, as sync(2). After a cut every operation
 * but reading the control file fails with EIO, as a dead disk would: unmount (fusermount3 -u) and
 * mount again to "reboot". Reading the control file returns counters (key=value, one line). An
 * unmount without a cut is a clean shutdown: everything pending reaches the backing directory.
 *
 * Regular files are opened with direct_io, so the kernel's page cache above FUSE holds nothing the
 * daemon has not seen; writeback caching is switched off. SQLite's "-shm" files (shared memory that
 * SQLite rebuilds after a crash, and must mmap) are passed straight through to the backing file
 * without direct_io. POSIX locks are left to the kernel (no lock operation: local locking within this
 * mount, which is all one machine's processes need).
 *
 * --verbose prints each metadata operation a cut undoes (to stderr).
 *
 * --real-fsync also fsyncs the backing file when a file is fsynced (not needed: the backing file
 * system does not lose power in a test).
 */
#define FUSE_USE_VERSION 31
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#define PAGE 4096
#define CTL_PATH "/.lossyfs-ctl"
#define CTL_FH UINT64_MAX
#define STATE_BUCKETS 4096

/* ---------------------------------------------------------------------------------------------- */
/* Configuration and counters                                                                      */

static char root_dir[PATH_MAX + 64];  /* BACKING/root */
static char stash_dir[PATH_MAX + 64]; /* BACKING/.lossyfs/stash */
static char lost_dir[PATH_MAX + 64];  /* BACKING/.lossyfs/lost */
static int meta_strict = 1;
static int real_fsync = 0;
static int verbose = 0;
static int dead = 0;
static uint64_t stash_counter = 0;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static struct {
  uint64_t writes, written_bytes, fsyncs, flushed_bytes, dirsyncs, meta_ops, meta_durable;
  uint64_t cuts, dropped_pages, dropped_files, kept_pages, torn_bytes, undone_meta, undo_failures;
} stats;

/* ---------------------------------------------------------------------------------------------- */
/* Unsynced file data: per backing inode, pages over the backing file                              */

struct page {
  uint64_t index;
  struct page *next;
  unsigned char data[PAGE];
};

struct fstate {
  ino_t ino;
  int fd;             /* the backing file, read-write; owned */
  off_t size;         /* the size a reader sees */
  off_t durable_size; /* the backing file's size */
  off_t trunc_min;    /* lowest size a truncation set since the last fsync (<= size) */
  struct page **pages;
  size_t nbuckets, npages;
  struct fstate *next;
};

static struct fstate *states[STATE_BUCKETS];

/* The last write not fsynced since: what "cut torn N" tears. */
static struct {
  int valid;
  ino_t ino;
  off_t off;
  size_t len, cap;
  unsigned char *data;
} last_write;

static struct fstate **state_slot(ino_t ino) {
  struct fstate **slot = &states[ino % STATE_BUCKETS];
  while (*slot != NULL && (*slot)->ino != ino) slot = &(*slot)->next;
  return slot;
}

static struct fstate *state_find(ino_t ino) { return *state_slot(ino); }

/* The state of `ino`, created over a dup of `fd` (or `fd` itself when `own`). NULL with errno set. */
static struct fstate *state_get(ino_t ino, int fd, int own) {
  struct fstate **slot = state_slot(ino);
  if (*slot != NULL) {
    if (own) close(fd);
    return *slot;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) return NULL;
  struct fstate *s = calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  s->fd = own ? fd : dup(fd);
  if (s->fd < 0) {
    free(s);
    return NULL;
  }
  s->ino = ino;
  s->size = s->durable_size = s->trunc_min = st.st_size;
  s->nbuckets = 64;
  s->pages = calloc(s->nbuckets, sizeof *s->pages);
  *slot = s;
  return s;
}

static void pages_free(struct fstate *s) {
  for (size_t b = 0; b < s->nbuckets; b++) {
    struct page *p = s->pages[b];
    while (p != NULL) {
      struct page *next = p->next;
      free(p);
      p = next;
    }
    s->pages[b] = NULL;
  }
  s->npages = 0;
}

static void state_free(struct fstate *s) {
  struct fstate **slot = state_slot(s->ino);
  if (*slot == s) *slot = s->next;
  if (last_write.valid && last_write.ino == s->ino) last_write.valid = 0;
  pages_free(s);
  free(s->pages);
  close(s->fd);
  free(s);
}

static struct page *page_find(struct fstate *s, uint64_t index) {
  for (struct page *p = s->pages[index % s->nbuckets]; p != NULL; p = p->next)
    if (p->index == index) return p;
  return NULL;
}

static void pages_rehash(struct fstate *s) {
  size_t nbuckets = s->nbuckets * 4;
  struct page **pages = calloc(nbuckets, sizeof *pages);
  if (pages == NULL) return; /* stay with the longer chains */
  for (size_t b = 0; b < s->nbuckets; b++) {
    struct page *p = s->pages[b];
    while (p != NULL) {
      struct page *next = p->next;
      p->next = pages[p->index % nbuckets];
      pages[p->index % nbuckets] = p;
      p = next;
    }
  }
  free(s->pages);
  s->pages = pages;
  s->nbuckets = nbuckets;
}

/* Bytes of the backing file that still show through: below both its size and any truncation. */
static off_t base_limit(const struct fstate *s) {
  return s->trunc_min < s->durable_size ? s->trunc_min : s->durable_size;
}

/* Reads what the backing file holds of [off, off + len) into buf, zeros past base_limit. */
static int base_read(const struct fstate *s, int fd, unsigned char *buf, off_t off, size_t len) {
  off_t limit = s == NULL ? (off_t)INT64_MAX : base_limit(s);
  size_t have = 0;
  if (off < limit) {
    size_t want = (off_t)len < limit - off ? len : (size_t)(limit - off);
    while (have < want) {
      ssize_t n = pread(fd, buf + have, want - have, off + (off_t)have);
      if (n < 0) return -errno;
      if (n == 0) break;
      have += (size_t)n;
    }
  }
  memset(buf + have, 0, len - have);
  return 0;
}

static struct page *page_get(struct fstate *s, uint64_t index, int *error) {
  struct page *p = page_find(s, index);
  if (p != NULL) return p;
  p = malloc(sizeof *p);
  if (p == NULL) {
    *error = -ENOMEM;
    return NULL;
  }
  p->index = index;
  int rc = base_read(s, s->fd, p->data, (off_t)(index * PAGE), PAGE);
  if (rc != 0) {
    free(p);
    *error = rc;
    return NULL;
  }
  if (s->npages >= s->nbuckets * 2) pages_rehash(s);
  p->next = s->pages[index % s->nbuckets];
  s->pages[index % s->nbuckets] = p;
  s->npages++;
  return p;
}

static int state_write(struct fstate *s, const unsigned char *buf, size_t len, off_t off) {
  for (size_t done = 0; done < len;) {
    off_t at = off + (off_t)done;
    uint64_t index = (uint64_t)at / PAGE;
    size_t in_page = (size_t)(at % PAGE);
    size_t n = PAGE - in_page < len - done ? PAGE - in_page : len - done;
    int error = 0;
    struct page *p = page_get(s, index, &error);
    if (p == NULL) return error;
    memcpy(p->data + in_page, buf + done, n);
    done += n;
  }
  if (off + (off_t)len > s->size) s->size = off + (off_t)len;
  return 0;
}

static void state_truncate(struct fstate *s, off_t size) {
  if (size < s->trunc_min) s->trunc_min = size;
  if (size < s->size) {
    for (size_t b = 0; b < s->nbuckets; b++) {
      struct page **link = &s->pages[b];
      while (*link != NULL) {
        struct page *p = *link;
        off_t start = (off_t)(p->index * PAGE);
        if (start >= size) {
          *link = p->next;
          free(p);
          s->npages--;
          continue;
        }
        if (start + PAGE > size) memset(p->data + (size - start), 0, (size_t)(start + PAGE - size));
        link = &p->next;
      }
    }
  }
  s->size = size;
}

static int state_read(struct fstate *s, int fd, unsigned char *buf, size_t len, off_t off) {
  if (off >= s->size) return 0;
  if ((off_t)len > s->size - off) len = (size_t)(s->size - off);
  for (size_t done = 0; done < len;) {
    off_t at = off + (off_t)done;
    uint64_t index = (uint64_t)at / PAGE;
    size_t in_page = (size_t)(at % PAGE);
    size_t n = PAGE - in_page < len - done ? PAGE - in_page : len - done;
    struct page *p = page_find(s, index);
    if (p != NULL) {
      memcpy(buf + done, p->data + in_page, n);
    } else {
      int rc = base_read(s, fd, buf + done, at, n);
      if (rc != 0) return rc;
    }
    done += n;
  }
  return (int)len;
}

static int pwrite_all(int fd, const unsigned char *buf, size_t len, off_t off) {
  for (size_t done = 0; done < len;) {
    ssize_t n = pwrite(fd, buf + done, len - done, off + (off_t)done);
    if (n < 0) return -errno;
    done += (size_t)n;
  }
  return 0;
}

/* fsync: the file's unsynced truncations and pages reach the backing file. Frees the state. */
static int state_flush(struct fstate *s) {
  int rc = 0;
  if (s->trunc_min < s->durable_size && ftruncate(s->fd, s->trunc_min) != 0) rc = -errno;
  for (size_t b = 0; rc == 0 && b < s->nbuckets; b++) {
    for (struct page *p = s->pages[b]; rc == 0 && p != NULL; p = p->next) {
      off_t start = (off_t)(p->index * PAGE);
      if (start >= s->size) continue;
      size_t n = s->size - start < PAGE ? (size_t)(s->size - start) : PAGE;
      rc = pwrite_all(s->fd, p->data, n, start);
      stats.flushed_bytes += n;
    }
  }
  struct stat st;
  if (rc == 0 && fstat(s->fd, &st) != 0) rc = -errno;
  if (rc == 0 && st.st_size != s->size && ftruncate(s->fd, s->size) != 0) rc = -errno;
  if (rc == 0 && real_fsync && fdatasync(s->fd) != 0) rc = -errno;
  if (rc == 0) state_free(s);
  return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* Metadata operations not yet durable (--meta=strict)                                             */

enum mop_kind { M_CREATE, M_MKDIR, M_UNLINK, M_RMDIR, M_RENAME };

struct mop {
  enum mop_kind kind;
  char *path;  /* backing paths as at the time of the operation */
  char *path2; /* rename: the new name */
  ino_t dir1, dir2;
  int need1, need2; /* directories still to be fsynced */
  ino_t ino;        /* the inode created / renamed */
  char *stash;      /* a hard link to the unlinked file, or to the file a rename replaced */
  int replaced_dir; /* rename replaced an (empty) directory */
  mode_t mode;      /* rmdir / replaced directory: its mode */
  mode_t mode_from; /* rename: the type of what was renamed */
};

static struct mop **mops;
static size_t nmops, capmops;

static void mop_free(struct mop *m) {
  if (m->stash != NULL) {
    unlink(m->stash);
    free(m->stash);
  }
  free(m->path);
  free(m->path2);
  free(m);
}

static void mop_push(struct mop *m) {
  stats.meta_ops++;
  if (!meta_strict || (!m->need1 && !m->need2)) {
    stats.meta_durable++;
    mop_free(m);
    return;
  }
  if (nmops == capmops) {
    capmops = capmops == 0 ? 64 : capmops * 2;
    mops = realloc(mops, capmops * sizeof *mops);
    if (mops == NULL) abort();
  }
  mops[nmops++] = m;
}

/* A file whose last name went with an unlink: its unsynced data has nowhere to go. */
static void forget_if_orphan(ino_t ino) {
  struct fstate *s = state_find(ino);
  struct stat st;
  if (s != NULL && fstat(s->fd, &st) == 0 && st.st_nlink == 0) state_free(s);
}

static void dir_synced(ino_t dir) {
  size_t kept = 0;
  for (size_t i = 0; i < nmops; i++) {
    struct mop *m = mops[i];
    if (m->dir1 == dir) m->need1 = 0;
    if (m->dir2 == dir) m->need2 = 0;
    if (!m->need1 && !m->need2) {
      stats.meta_durable++;
      ino_t stashed = 0;
      struct stat st;
      if (m->stash != NULL && lstat(m->stash, &st) == 0) stashed = st.st_ino;
      mop_free(m);
      if (stashed != 0) forget_if_orphan(stashed);
    } else {
      mops[kept++] = m;
    }
  }
  nmops = kept;
}

static int parent_ino(const char *path, ino_t *ino) {
  char buf[PATH_MAX];
  snprintf(buf, sizeof buf, "%s", path);
  char *slash = strrchr(buf, '/');
  if (slash == NULL) return -EINVAL;
  if (slash == buf)
    slash[1] = '\0';
  else
    *slash = '\0';
  struct stat st;
  if (lstat(buf, &st) != 0) return -errno;
  *ino = st.st_ino;
  return 0;
}

static char *stash_name(void) {
  char buf[PATH_MAX + 32];
  snprintf(buf, sizeof buf, "%s/%" PRIu64, stash_dir, ++stash_counter);
  return strdup(buf);
}

static struct mop *mop_new(enum mop_kind kind, const char *path, const char *path2) {
  struct mop *m = calloc(1, sizeof *m);
  if (m == NULL) abort();
  m->kind = kind;
  m->path = strdup(path);
  if (path2 != NULL) m->path2 = strdup(path2);
  m->need1 = parent_ino(path, &m->dir1) == 0;
  if (path2 != NULL) m->need2 = parent_ino(path2, &m->dir2) == 0;
  return m;
}

/* Records a name just created at backing path `bpath`. */
static void record_create(const char *bpath, int is_dir) {
  struct stat st;
  if (lstat(bpath, &st) != 0) return;
  struct mop *m = mop_new(is_dir ? M_MKDIR : M_CREATE, bpath, NULL);
  m->ino = st.st_ino;
  mop_push(m);
}

static int same_ino(const char *path, ino_t ino) {
  struct stat st;
  return lstat(path, &st) == 0 && st.st_ino == ino;
}

static int exists(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

static void undo_failed(const char *what, const char *path) {
  stats.undo_failures++;
  fprintf(stderr, "lossyfs: cannot undo %s of %s: %s\n", what, path, strerror(errno));
}

static const char *const mop_names[] = {"create", "mkdir", "unlink", "rmdir", "rename"};

static void mop_undo(struct mop *m) {
  char lost[PATH_MAX + 32];
  stats.undone_meta++;
  if (verbose)
    fprintf(stderr, "lossyfs: undo %s %s%s%s\n", mop_names[m->kind], m->path + strlen(root_dir),
            m->path2 != NULL ? " -> " : "", m->path2 != NULL ? m->path2 + strlen(root_dir) : "");
  switch (m->kind) {
  case M_CREATE:
    if (same_ino(m->path, m->ino) && unlink(m->path) != 0) undo_failed("create", m->path);
    break;
  case M_MKDIR:
    /* The directory's entry is lost, and with it whatever was (durably or not) inside it. */
    snprintf(lost, sizeof lost, "%s/%" PRIu64, lost_dir, ++stash_counter);
    if (same_ino(m->path, m->ino) && rename(m->path, lost) != 0) undo_failed("mkdir", m->path);
    break;
  case M_UNLINK:
    if (!exists(m->path) && link(m->stash, m->path) != 0) undo_failed("unlink", m->path);
    break;
  case M_RMDIR:
    if (!exists(m->path) && mkdir(m->path, m->mode) != 0) undo_failed("rmdir", m->path);
    break;
  case M_RENAME:
    /* need1: the old name's removal is not durable (its directory not fsynced); need2: the new
     * name is not. A file can come back under both names, or under neither (POSIX allows either
     * after a crash); a directory is moved back whole unless its new name is durable. */
    if (!same_ino(m->path2, m->ino)) {
      errno = ENOENT;
      undo_failed("rename", m->path2);
      break;
    }
    if (m->need2 && (m->need1 || S_ISDIR(m->mode_from))) {
      if (exists(m->path) || rename(m->path2, m->path) != 0) {
        undo_failed("rename", m->path2);
        break;
      }
    } else if (m->need2) {
      if (unlink(m->path2) != 0) undo_failed("rename (new name)", m->path2);
    } else if (m->need1 && !S_ISDIR(m->mode_from)) {
      if (!exists(m->path) && link(m->path2, m->path) != 0) undo_failed("rename (old name)", m->path);
      break;
    } else {
      break;
    }
    /* The new name is undone: what it replaced is back. */
    if (m->stash != NULL && link(m->stash, m->path2) != 0) undo_failed("rename (replaced)", m->path2);
    if (m->replaced_dir && mkdir(m->path2, m->mode) != 0) undo_failed("rename (replaced dir)", m->path2);
    break;
  }
}

/* ---------------------------------------------------------------------------------------------- */
/* The cut                                                                                          */

static uint64_t rng_state;
static uint64_t rng_next(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* mode 0: drop; 1: torn (keep `arg` bytes of the last write); 2: random pages (seed `arg`). */
static void cut(int mode, uint64_t arg) {
  stats.cuts++;
  if (mode == 1 && last_write.valid) {
    struct fstate *s = state_find(last_write.ino);
    size_t keep = last_write.len > 1 ? (arg < last_write.len - 1 ? (size_t)arg : last_write.len - 1) : 0;
    if (s != NULL && keep > 0 && pwrite_all(s->fd, last_write.data, keep, last_write.off) == 0)
      stats.torn_bytes += keep;
  }
  rng_state = arg * 2654435761u + 88172645463325252ull;
  for (size_t b = 0; b < STATE_BUCKETS; b++) {
    while (states[b] != NULL) {
      struct fstate *s = states[b];
      for (size_t i = 0; i < s->nbuckets; i++) {
        for (struct page *p = s->pages[i]; p != NULL; p = p->next) {
          off_t start = (off_t)(p->index * PAGE);
          if (mode == 2 && start < s->size && (rng_next() & 1) == 1) {
            size_t n = s->size - start < PAGE ? (size_t)(s->size - start) : PAGE;
            if (pwrite_all(s->fd, p->data, n, start) == 0) stats.kept_pages++;
          } else {
            stats.dropped_pages++;
          }
        }
      }
      stats.dropped_files++;
      state_free(s);
    }
  }
  last_write.valid = 0;
  for (size_t i = nmops; i > 0; i--) mop_undo(mops[i - 1]);
  for (size_t i = 0; i < nmops; i++) {
    /* Undone: the stash link (if any) went back in place, so it may go now. */
    mop_free(mops[i]);
  }
  nmops = 0;
  dead = 1;
}

static int ctl_stats(char *buf, size_t cap) {
  size_t pending_pages = 0, pending_files = 0;
  for (size_t b = 0; b < STATE_BUCKETS; b++)
    for (struct fstate *s = states[b]; s != NULL; s = s->next) {
      pending_files++;
      pending_pages += s->npages;
    }
  return snprintf(buf, cap,
                  "dead=%d writes=%" PRIu64 " written_bytes=%" PRIu64 " fsyncs=%" PRIu64
                  " flushed_bytes=%" PRIu64 " dirsyncs=%" PRIu64 " meta_ops=%" PRIu64 " meta_durable=%" PRIu64
                  " pending_files=%zu pending_pages=%zu pending_meta=%zu cuts=%" PRIu64 " dropped_files=%" PRIu64
                  " dropped_pages=%" PRIu64 " kept_pages=%" PRIu64 " torn_bytes=%" PRIu64 " undone_meta=%" PRIu64
                  " undo_failures=%" PRIu64 "\n",
                  dead, stats.writes, stats.written_bytes, stats.fsyncs, stats.flushed_bytes, stats.dirsyncs,
                  stats.meta_ops, stats.meta_durable, pending_files, pending_pages, nmops, stats.cuts,
                  stats.dropped_files, stats.dropped_pages, stats.kept_pages, stats.torn_bytes, stats.undone_meta,
                  stats.undo_failures);
}

/* sync(2): every unsynced page and truncation reaches the backing file, every name is durable. */
static void sync_all(void) {
  for (size_t b = 0; b < STATE_BUCKETS; b++)
    while (states[b] != NULL)
      if (state_flush(states[b]) != 0) state_free(states[b]);
  for (size_t i = 0; i < nmops; i++) mop_free(mops[i]);
  nmops = 0;
}

static int ctl_command(const char *buf, size_t len) {
  char cmd[256];
  if (len >= sizeof cmd) return -EINVAL;
  memcpy(cmd, buf, len);
  cmd[len] = '\0';
  char word[32] = "", mode[32] = "";
  unsigned long long arg = 0;
  int n = sscanf(cmd, "%31s %31s %llu", word, mode, &arg);
  if (n < 1) return -EINVAL;
  if (dead) return -EIO;
  if (strcmp(word, "sync") == 0 && n == 1) {
    sync_all();
    return (int)len;
  }
  if (strcmp(word, "cut") != 0) return -EINVAL;
  if (n == 1)
    cut(0, 0);
  else if (n == 3 && strcmp(mode, "torn") == 0)
    cut(1, arg);
  else if (n == 3 && strcmp(mode, "random") == 0)
    cut(2, arg);
  else
    return -EINVAL;
  return (int)len;
}

/* ---------------------------------------------------------------------------------------------- */
/* FUSE operations                                                                                  */

enum handle_kind { H_FILE, H_DIR };

struct handle {
  enum handle_kind kind;
  int fd;
  int passthrough; /* -shm: straight to the backing file */
  ino_t ino;
  DIR *dir;
};

#define HANDLE(fi) ((struct handle *)(uintptr_t)(fi)->fh)
static int is_ctl(const char *path, const struct fuse_file_info *fi) {
  return (fi != NULL && fi->fh == CTL_FH) || (path != NULL && strcmp(path, CTL_PATH) == 0);
}

static void backing(char *out, const char *path) { snprintf(out, PATH_MAX, "%s%s", root_dir, path); }

static int is_shm(const char *path) {
  size_t n = strlen(path);
  return n >= 4 && strcmp(path + n - 4, "-shm") == 0;
}

#define BEGIN                                                                                                    \
  pthread_mutex_lock(&lock);                                                                                     \
  if (dead) {                                                                                                    \
    pthread_mutex_unlock(&lock);                                                                                 \
    return -EIO;                                                                                                 \
  }
#define END(rc)                                                                                                  \
  do {                                                                                                           \
    int end_rc = (rc);                                                                                           \
    pthread_mutex_unlock(&lock);                                                                                 \
    return end_rc;                                                                                               \
  } while (0)

static void *lfs_init(struct fuse_conn_info *conn, struct fuse_config *cfg) {
  cfg->use_ino = 1;
  cfg->nullpath_ok = 1;
  cfg->hard_remove = 1;
  cfg->entry_timeout = 0;
  cfg->attr_timeout = 0;
  cfg->negative_timeout = 0;
  cfg->kernel_cache = 0;
  cfg->auto_cache = 0;
  cfg->direct_io = 0; /* per file, in open/create */
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  return NULL;
}

static void fix_size(struct stat *st) {
  if (!S_ISREG(st->st_mode)) return;
  struct fstate *s = state_find(st->st_ino);
  if (s != NULL) {
    st->st_size = s->size;
    st->st_blocks = (s->size + 511) / 512;
  }
}

static int lfs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi) {
  if (is_ctl(path, fi)) {
    memset(st, 0, sizeof *st);
    st->st_mode = S_IFREG | 0600;
    st->st_nlink = 1;
    return 0;
  }
  pthread_mutex_lock(&lock);
  if (dead && !(path != NULL && strcmp(path, "/") == 0)) END(-EIO);
  int rc;
  if (fi != NULL && fi->fh != 0) {
    struct handle *h = HANDLE(fi);
    rc = fstat(h->kind == H_DIR ? dirfd(h->dir) : h->fd, st) == 0 ? 0 : -errno;
  } else {
    char b[PATH_MAX];
    backing(b, path);
    rc = lstat(b, st) == 0 ? 0 : -errno;
  }
  if (rc == 0) fix_size(st);
  END(rc);
}

static int lfs_access(const char *path, int mask) {
  if (is_ctl(path, NULL)) return 0;
  BEGIN;
  char b[PATH_MAX];
  backing(b, path);
  END(access(b, mask) == 0 ? 0 : -errno);
}

static int lfs_readlink(const char *path, char *buf, size_t size) {
  BEGIN;
  char b[PATH_MAX];
  backing(b, path);
  ssize_t n = readlink(b, buf, size - 1);
  if (n < 0) END(-errno);
  buf[n] = '\0';
  END(0);
}

static int lfs_opendir(const char *path, struct fuse_file_info *fi) {
  BEGIN;
  char b[PATH_MAX];
  backing(b, path);
  DIR *dir = opendir(b);
  if (dir == NULL) END(-errno);
  struct handle *h = calloc(1, sizeof *h);
  h->kind = H_DIR;
  h->dir = dir;
  h->fd = -1;
  fi->fh = (uint64_t)(uintptr_t)h;
  END(0);
}

static int lfs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t offset,
                       struct fuse_file_info *fi, enum fuse_readdir_flags flags) {
  (void)path;
  (void)offset;
  (void)flags;
  BEGIN;
  struct handle *h = HANDLE(fi);
  rewinddir(h->dir);
  struct dirent *entry;
  errno = 0;
  while ((entry = readdir(h->dir)) != NULL) {
    struct stat st;
    memset(&st, 0, sizeof st);
    st.st_ino = entry->d_ino;
    st.st_mode = (mode_t)DTTOIF(entry->d_type);
    if (filler(buf, entry->d_name, &st, 0, 0) != 0) break;
  }
  END(0);
}

static int lfs_releasedir(const char *path, struct fuse_file_info *fi) {
  (void)path;
  pthread_mutex_lock(&lock);
  struct handle *h = HANDLE(fi);
  closedir(h->dir);
  free(h);
  END(0);
}

static int lfs_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi) {
  (void)path;
  (void)datasync;
  BEGIN;
  struct handle *h = HANDLE(fi);
  struct stat st;
  if (fstat(dirfd(h->dir), &st) != 0) END(-errno);
  stats.dirsyncs++;
  dir_synced(st.st_ino);
  if (real_fsync) fsync(dirfd(h->dir));
  END(0);
}

static int lfs_mknod(const char *path, mode_t mode, dev_t rdev) {
  BEGIN;
  char b[PATH_MAX];
  backing(b, path);
  int rc = S_ISFIFO(mode) ? mkfifo(b, mode) : mknod(b, mode, rdev);
  if (rc != 0) END(-errno);
  record_create(b, 0);
  END(0);
}

static int lfs_mkdir(const char *path, mode_t mode) {
  BEGIN;
  char b[PATH_MAX];
  backing(b, path);
  if (mkdir(b, mode) != 0) END(-errno);
  record_create(b, 1);
  END(0);
}

static int lfs_symlink(const char *target, const char *path) {
  BEGIN;
  char b[PATH_MAX];
  backing(b, path);
  if (symlink(target, b) != 0) END(-errno);
  record_create(b, 0);
  END(0);
}

static int lfs_link(const char *from, const char *to) {
  BEGIN;
  char bf[PATH_MAX], bt[PATH_MAX];
  backing(bf, from);
  backing(bt, to);
  if (link(bf, bt) != 0) END(-errno);
  record_create(bt, 0);
  END(0);
}

static int lfs_unlink(const char *path) {
  BEGIN;
  char b[PATH_MAX];
  backing(b, path);
  struct stat st;
  if (lstat(b, &st) != 0) END(-errno);
  char *stash = NULL;
  if (meta_strict) {
    stash = stash_name();
    if (link(b, stash) != 0) {
      int e = errno;
      free(stash);
      END(-e);
    }
  }
  if (unlink(b) != 0) {
    int e = errno;
    if (stash != NULL) {
      unlink(stash);
      free(stash);
    }
    END(-e);
  }
  struct mop *m = mop_new(M_UNLINK, b, NULL);
  m->ino = st.st_ino;
  m->stash = stash;
  mop_push(m);
  forget_if_orphan(st.st_ino);
  END(0);
}

static int lfs_rmdir(const char *path) {
  BEGIN;
  char b[PATH_MAX];
  backing(b, path);
  struct stat st;
  if (lstat(b, &st) != 0) END(-errno);
  if (rmdir(b) != 0) END(-errno);
  struct mop *m = mop_new(M_RMDIR, b, NULL);
  m->mode = st.st_mode & 07777;
  mop_push(m);
  END(0);
}

static int lfs_rename(const char *from, const char *to, unsigned int flags) {
  if (flags & ~RENAME_NOREPLACE) return -EINVAL;
  BEGIN;
  char bf[PATH_MAX], bt[PATH_MAX];
  backing(bf, from);
  backing(bt, to);
  struct stat sf, stt;
  if (lstat(bf, &sf) != 0) END(-errno);
  int target_exists = lstat(bt, &stt) == 0;
  char *stash = NULL;
  if (meta_strict && target_exists && !S_ISDIR(stt.st_mode) && stt.st_ino != sf.st_ino) {
    stash = stash_name();
    if (link(bt, stash) != 0) {
      int e = errno;
      free(stash);
      END(-e);
    }
  }
  if (renameat2(AT_FDCWD, bf, AT_FDCWD, bt, flags) != 0) {
    int e = errno;
    if (stash != NULL) {
      unlink(stash);
      free(stash);
    }
    END(-e);
  }
  struct mop *m = mop_new(M_RENAME, bf, bt);
  m->ino = sf.st_ino;
  m->mode_from = sf.st_mode;
  m->stash = stash;
  m->replaced_dir = target_exists && S_ISDIR(stt.st_mode);
  m->mode = stt.st_mode & 07777;
  mop_push(m);
  if (target_exists && !S_ISDIR(stt.st_mode)) forget_if_orphan(stt.st_ino);
  END(0);
}

static int lfs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi) {
  BEGIN;
  if (fi != NULL && fi->fh != 0 && fi->fh != CTL_FH && HANDLE(fi)->kind == H_FILE)
    END(fchmod(HANDLE(fi)->fd, mode) == 0 ? 0 : -errno);
  char b[PATH_MAX];
  backing(b, path);
  END(chmod(b, mode) == 0 ? 0 : -errno);
}

static int lfs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi) {
  BEGIN;
  if (fi != NULL && fi->fh != 0 && fi->fh != CTL_FH && HANDLE(fi)->kind == H_FILE)
    END(fchown(HANDLE(fi)->fd, uid, gid) == 0 ? 0 : -errno);
  char b[PATH_MAX];
  backing(b, path);
  END(lchown(b, uid, gid) == 0 ? 0 : -errno);
}

static int lfs_utimens(const char *path, const struct timespec ts[2], struct fuse_file_info *fi) {
  BEGIN;
  if (fi != NULL && fi->fh != 0 && fi->fh != CTL_FH && HANDLE(fi)->kind == H_FILE)
    END(futimens(HANDLE(fi)->fd, ts) == 0 ? 0 : -errno);
  char b[PATH_MAX];
  backing(b, path);
  END(utimensat(AT_FDCWD, b, ts, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno);
}

/* Truncation of the file open as `fd` (or at backing path `b`): unsynced, like a write. */
static int truncate_pending(int fd, const char *b, off_t size) {
  int own = 0;
  if (fd < 0) {
    fd = open(b, O_RDWR);
    if (fd < 0) return -errno;
    own = 1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    if (own) close(fd);
    return -e;
  }
  if (!S_ISREG(st.st_mode)) {
    if (own) close(fd);
    return -EINVAL;
  }
  struct fstate *s = state_get(st.st_ino, fd, own);
  if (s == NULL) {
    int e = errno;
    if (own) close(fd);
    return -e;
  }
  state_truncate(s, size);
  return 0;
}

static int lfs_truncate(const char *path, off_t size, struct fuse_file_info *fi) {
  BEGIN;
  if (fi != NULL && fi->fh != 0 && fi->fh != CTL_FH) {
    struct handle *h = HANDLE(fi);
    if (h->passthrough) END(ftruncate(h->fd, size) == 0 ? 0 : -errno);
    END(truncate_pending(h->fd, NULL, size));
  }
  if (path != NULL && strcmp(path, CTL_PATH) == 0) END(0);
  char b[PATH_MAX];
  backing(b, path);
  if (is_shm(path)) END(truncate(b, size) == 0 ? 0 : -errno);
  END(truncate_pending(-1, b, size));
}

static int open_handle(const char *path, const char *b, struct fuse_file_info *fi, int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  struct handle *h = calloc(1, sizeof *h);
  h->kind = H_FILE;
  h->fd = fd;
  h->ino = st.st_ino;
  h->passthrough = is_shm(path);
  fi->fh = (uint64_t)(uintptr_t)h;
  fi->direct_io = !h->passthrough;
  fi->keep_cache = 0;
  if ((fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY) {
    int rc = h->passthrough ? (ftruncate(fd, 0) == 0 ? 0 : -errno) : truncate_pending(fd, b, 0);
    if (rc != 0) {
      close(fd);
      free(h);
      return rc;
    }
  }
  return 0;
}

static int backing_flags(int flags) {
  flags &= ~(O_TRUNC | O_APPEND | O_CREAT | O_EXCL | O_DIRECT);
  /* The state of a file may need a writable dup: open what is writable read-write. */
  if ((flags & O_ACCMODE) == O_WRONLY) flags = (flags & ~O_ACCMODE) | O_RDWR;
  return flags;
}

static int lfs_open(const char *path, struct fuse_file_info *fi) {
  if (is_ctl(path, NULL)) {
    fi->fh = CTL_FH;
    fi->direct_io = 1;
    fi->nonseekable = 1;
    return 0;
  }
  BEGIN;
  char b[PATH_MAX];
  backing(b, path);
  int fd = open(b, backing_flags(fi->flags));
  if (fd < 0) END(-errno);
  END(open_handle(path, b, fi, fd));
}

static int lfs_create(const char *path, mode_t mode, struct fuse_file_info *fi) {
  if (is_ctl(path, NULL)) return -EEXIST;
  BEGIN;
  char b[PATH_MAX];
  backing(b, path);
  int existed = exists(b);
  int fd = open(b, backing_flags(fi->flags) | O_CREAT | (fi->flags & O_EXCL), mode);
  if (fd < 0) END(-errno);
  if (!existed) record_create(b, 0);
  END(open_handle(path, b, fi, fd));
}

static int lfs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)path;
  if (fi->fh == CTL_FH) {
    pthread_mutex_lock(&lock);
    char text[1024];
    int n = ctl_stats(text, sizeof text);
    pthread_mutex_unlock(&lock);
    if (off >= n) return 0;
    size_t len = (size_t)(n - off) < size ? (size_t)(n - off) : size;
    memcpy(buf, text + off, len);
    return (int)len;
  }
  BEGIN;
  struct handle *h = HANDLE(fi);
  struct fstate *s = h->passthrough ? NULL : state_find(h->ino);
  if (s != NULL) END(state_read(s, h->fd, (unsigned char *)buf, size, off));
  size_t have = 0;
  while (have < size) {
    ssize_t n = pread(h->fd, buf + have, size - have, off + (off_t)have);
    if (n < 0) END(-errno);
    if (n == 0) break;
    have += (size_t)n;
  }
  END((int)have);
}

static int lfs_write(const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)path;
  if (fi->fh == CTL_FH) {
    pthread_mutex_lock(&lock);
    int rc = ctl_command(buf, size);
    pthread_mutex_unlock(&lock);
    return rc;
  }
  BEGIN;
  struct handle *h = HANDLE(fi);
  stats.writes++;
  stats.written_bytes += size;
  if (h->passthrough) END(pwrite_all(h->fd, (const unsigned char *)buf, size, off) == 0 ? (int)size : -EIO);
  struct fstate *s = state_get(h->ino, h->fd, 0);
  if (s == NULL) END(-errno);
  int rc = state_write(s, (const unsigned char *)buf, size, off);
  if (rc != 0) END(rc);
  if (last_write.cap < size) {
    unsigned char *data = realloc(last_write.data, size);
    if (data == NULL) END(-ENOMEM);
    last_write.data = data;
    last_write.cap = size;
  }
  memcpy(last_write.data, buf, size);
  last_write.valid = 1;
  last_write.ino = h->ino;
  last_write.off = off;
  last_write.len = size;
  END((int)size);
}

static int lfs_statfs(const char *path, struct statvfs *st) {
  (void)path;
  BEGIN;
  END(statvfs(root_dir, st) == 0 ? 0 : -errno);
}

static int lfs_flush(const char *path, struct fuse_file_info *fi) {
  (void)path;
  (void)fi;
  return 0; /* close writes nothing back */
}

static int lfs_release(const char *path, struct fuse_file_info *fi) {
  (void)path;
  if (fi->fh == CTL_FH) return 0;
  pthread_mutex_lock(&lock);
  struct handle *h = HANDLE(fi);
  struct stat st;
  if (!dead && fstat(h->fd, &st) == 0 && st.st_nlink == 0) {
    struct fstate *s = state_find(h->ino);
    if (s != NULL) state_free(s);
  }
  close(h->fd);
  free(h);
  END(0);
}

static int lfs_fsync(const char *path, int datasync, struct fuse_file_info *fi) {
  (void)path;
  (void)datasync;
  if (fi->fh == CTL_FH) return 0;
  BEGIN;
  struct handle *h = HANDLE(fi);
  stats.fsyncs++;
  if (h->passthrough) END(real_fsync && fdatasync(h->fd) != 0 ? -errno : 0);
  struct fstate *s = state_find(h->ino);
  int rc = s == NULL ? 0 : state_flush(s);
  if (rc == 0 && s == NULL && real_fsync && fdatasync(h->fd) != 0) rc = -errno;
  END(rc);
}

static int lfs_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi) {
  (void)path;
  if (fi == NULL || fi->fh == CTL_FH) return -EOPNOTSUPP;
  BEGIN;
  struct handle *h = HANDLE(fi);
  if (h->passthrough) END(fallocate(h->fd, mode, off, len) == 0 ? 0 : -errno);
  if (mode != 0) END(-EOPNOTSUPP);
  struct fstate *s = state_get(h->ino, h->fd, 0);
  if (s == NULL) END(-errno);
  if (off + len > s->size) s->size = off + len; /* zeros: pages past the old size read as zeros */
  END(0);
}

/* A clean unmount (no cut before it) is a clean shutdown: everything reaches the disk, as sync(2). */
static void lfs_destroy(void *private_data) {
  (void)private_data;
  pthread_mutex_lock(&lock);
  if (!dead) sync_all();
  pthread_mutex_unlock(&lock);
}

static const struct fuse_operations operations = {
    .init = lfs_init,
    .destroy = lfs_destroy,
    .getattr = lfs_getattr,
    .access = lfs_access,
    .readlink = lfs_readlink,
    .opendir = lfs_opendir,
    .readdir = lfs_readdir,
    .releasedir = lfs_releasedir,
    .fsyncdir = lfs_fsyncdir,
    .mknod = lfs_mknod,
    .mkdir = lfs_mkdir,
    .symlink = lfs_symlink,
    .unlink = lfs_unlink,
    .rmdir = lfs_rmdir,
    .rename = lfs_rename,
    .link = lfs_link,
    .chmod = lfs_chmod,
    .chown = lfs_chown,
    .truncate = lfs_truncate,
    .utimens = lfs_utimens,
    .open = lfs_open,
    .create = lfs_create,
    .read = lfs_read,
    .write = lfs_write,
    .statfs = lfs_statfs,
    .flush = lfs_flush,
    .release = lfs_release,
    .fsync = lfs_fsync,
    .fallocate = lfs_fallocate,
};

static int make_dir(const char *path) {
  if (mkdir(path, 0700) != 0 && errno != EEXIST) {
    fprintf(stderr, "lossyfs: cannot create %s: %s\n", path, strerror(errno));
    return -1;
  }
  return 0;
}

int main(int argc, char *argv[]) {
  int i = 1;
  for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
    if (strcmp(argv[i], "--meta=strict") == 0)
      meta_strict = 1;
    else if (strcmp(argv[i], "--meta=immediate") == 0)
      meta_strict = 0;
    else if (strcmp(argv[i], "--real-fsync") == 0)
      real_fsync = 1;
    else if (strcmp(argv[i], "--verbose") == 0)
      verbose = 1;
    else {
      fprintf(stderr, "lossyfs: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (argc - i < 2) {
    fprintf(stderr,
            "usage: lossyfs [--meta=strict|immediate] [--real-fsync] [--verbose] BACKING MOUNTPOINT [FUSE options]\n");
    return 2;
  }
  char base[PATH_MAX];
  if (realpath(argv[i], base) == NULL) {
    fprintf(stderr, "lossyfs: %s: %s\n", argv[i], strerror(errno));
    return 2;
  }
  char meta[PATH_MAX + 64];
  if (strlen(base) > PATH_MAX - 64) {
    fprintf(stderr, "lossyfs: %s: path too long\n", base);
    return 2;
  }
  snprintf(root_dir, sizeof root_dir, "%s/root", base);
  snprintf(meta, sizeof meta, "%s/.lossyfs", base);
  snprintf(stash_dir, sizeof stash_dir, "%s/stash", meta);
  snprintf(lost_dir, sizeof lost_dir, "%s/lost", meta);
  if (make_dir(root_dir) || make_dir(meta) || make_dir(stash_dir) || make_dir(lost_dir)) return 1;
  /* Stash links of an earlier mount (undone or durable: either way no longer needed). */
  DIR *dir = opendir(stash_dir);
  if (dir != NULL) {
    struct dirent *entry;
    char path[PATH_MAX + 256];
    while ((entry = readdir(dir)) != NULL) {
      if (entry->d_name[0] == '.') continue;
      snprintf(path, sizeof path, "%s/%s", stash_dir, entry->d_name);
      if (unlink(path) != 0) fprintf(stderr, "lossyfs: cannot remove %s: %s\n", path, strerror(errno));
    }
    closedir(dir);
  }
  struct timeval now;
  gettimeofday(&now, NULL);
  stash_counter = (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_usec;

  /* fuse_main gets: argv[0], MOUNTPOINT, the FUSE options. */
  int fargc = argc - i;
  char **fargv = calloc((size_t)fargc + 1, sizeof *fargv);
  fargv[0] = argv[0];
  for (int k = 1; k < fargc; k++) fargv[k] = argv[i + k];
  return fuse_main(fargc, fargv, &operations, NULL);
}
