/*
 * unit_fs.h - file-system chores of unit tests.
 */
#ifndef MESH_TEST_UNIT_FS_H
#define MESH_TEST_UNIT_FS_H

/* Removes the flat directory |dir| and its files; fails the test on any error. */
void unit_rm_dir(const char *dir);

#endif
