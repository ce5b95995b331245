// The new root's two sequences, side by side: what the sandbox child does for a plan that starts
// with a bind of / (the bench's), before and after it skipped the base. In a new user and mount
// namespace per sample (map 0 0 1), alternating, the time from make-rslave to the new root being
// "/" with the host's root detached, and from _exit to the parent's waitpid:
//   base     a tmpfs over /tmp, pivot_root into it (host at /oldroot), a tmpfs at /newroot, a
//            read-only recursive copy of /oldroot attached there, /oldroot detached, pivot_root into
//            /newroot, the base detached (bwrap's order; the library before the stacked path)
//   stacked  the read-only recursive copy of / stacked over /, pivot_root into it, the host's root
//            detached (the library and scripts/bench/sandbox-floor.c now)
// Evidence for the README's sandbox notes, not part of `npm run bench`.
//
//   gcc -O2 -o /tmp/sandbox-root-ab scripts/bench/sandbox-root-ab.c && /tmp/sandbox-root-ab 400
#define _GNU_SOURCE
#include <linux/mount.h>
#include <sched.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include "floor-common.h"
#define CK(x) do{ if((long)(x)<0){perror(#x); _exit(3);} }while(0)
static void build(int mode){
  struct mount_attr at={0}; at.attr_set=MOUNT_ATTR_RDONLY|MOUNT_ATTR_NOSUID|MOUNT_ATTR_NODEV;
  if(mode==0){
    CK(mount("tmpfs","/tmp","tmpfs",MS_NOSUID|MS_NODEV,"mode=0755")); CK(chdir("/tmp")); CK(mkdir("newroot",0755)); CK(mkdir("oldroot",0755));
    CK(syscall(SYS_pivot_root,".","oldroot")); CK(chdir("/"));
    CK(mount("tmpfs","/newroot","tmpfs",MS_NOSUID|MS_NODEV,"mode=0755"));
    int t=syscall(SYS_open_tree,AT_FDCWD,"/oldroot",OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC|AT_RECURSIVE); CK(t);
    CK(syscall(SYS_mount_setattr,t,"",AT_EMPTY_PATH|AT_RECURSIVE,&at,sizeof at));
    int d=open("/newroot",O_PATH|O_DIRECTORY|O_CLOEXEC); CK(d);
    CK(syscall(SYS_move_mount,t,"",d,"",MOVE_MOUNT_F_EMPTY_PATH|MOVE_MOUNT_T_EMPTY_PATH)); close(d); close(t);
    CK(umount2("/oldroot",MNT_DETACH)); CK(chdir("/newroot"));
  } else {
    int t=syscall(SYS_open_tree,AT_FDCWD,"/",OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC|AT_RECURSIVE); CK(t);
    CK(syscall(SYS_mount_setattr,t,"",AT_EMPTY_PATH|AT_RECURSIVE,&at,sizeof at));
    CK(syscall(SYS_move_mount,t,"",AT_FDCWD,"/",MOVE_MOUNT_F_EMPTY_PATH)); CK(fchdir(t)); close(t);
  }
  CK(syscall(SYS_pivot_root,".",".")); CK(umount2(".",MNT_DETACH)); CK(chdir("/"));
}
int main(int argc,char**argv){
  int n=argc>1?atoi(argv[1]):400;
  double *b[2]={calloc(n,8),calloc(n,8)},*e[2]={calloc(n,8),calloc(n,8)};
  volatile double *T=mmap(NULL,4096,PROT_READ|PROT_WRITE,MAP_SHARED|MAP_ANONYMOUS,-1,0);
  for(int i=0;i<n;i++) for(int m=0;m<2;m++){
    pid_t p=fork();
    if(p==0){
      if(unshare(CLONE_NEWUSER|CLONE_NEWNS)) _exit(1);
      write_file("/proc/self/uid_map","0 0 1\n"); write_file("/proc/self/setgroups","deny"); write_file("/proc/self/gid_map","0 0 1\n");
      CK(mount(NULL,"/",NULL,MS_REC|MS_SLAVE,NULL));
      double t0=now_us(); build(m); T[0]=now_us()-t0; T[1]=now_us(); _exit(0);
    }
    int st; waitpid(p,&st,0); double tw=now_us(); if(st){fprintf(stderr,"child failed %x\n",st);return 1;}
    b[m][i]=T[0]; e[m][i]=tw-T[1];
  }
  for(int m=0;m<2;m++){ qsort(b[m],n,8,cmp_double); qsort(e[m],n,8,cmp_double);
    printf("%s: build+pivot+detach median %.1f p90 %.1f p99 %.1f | exit->reaped median %.1f\n", m?"stacked":"base   ", b[m][n/2], b[m][n*9/10], b[m][n*99/100], e[m][n/2]); }
}
