/* whoami-c looks up the user it runs as in /etc/passwd. With glibc this goes through NSS, which loads
 * libnss_files.so at run time (absent in scratch); musl reads /etc/passwd itself. */
#include <pwd.h>
#include <stdio.h>
#include <unistd.h>

int main(void) {
    struct passwd *entry = getpwuid(getuid());
    if (entry == NULL) {
        puts("unknown user: no /etc/passwd entry");
        return 1;
    }
    printf("running as %s (uid %u)\n", entry->pw_name, (unsigned)entry->pw_uid);
    return 0;
}
