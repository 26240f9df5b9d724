/* What the files of the tree module share: the tree, its nodes, edges and point records,
 * and the steps of its undo journal (written by tree.c, undone by tree_journal.c). */
#ifndef SPRIG_TREE_INTERNAL_H
#define SPRIG_TREE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "map.h"
#include "sprig/tree.h"

typedef struct prec {
    sprig_point_t p; /* first member: a sprig_point_t * handed out is a prec_t * */
    uint64_t ph;     /* ph(p), also for a local point */
    bool local;      /* a local point: kept, but its ph is left out of the hashes */
    bool journaled;  /* already in the open journal */
    struct prec *next;
    const void *owner;
} prec_t;

struct sprig_node {
    const char *type; /* interned */
    uint64_t own, sub;
    prec_t *points, *points_tail;
    sprig_edge_t *children, *parents;
    sprig_node_t *next_all;
    size_t index; /* creation order, 0-based */
    unsigned mark;
    unsigned pending; /* children still to recompute, during propagate */
    bool journaled;   /* added or hashes saved in the open journal */
    char id[];
};

struct sprig_edge {
    sprig_node_t *up, *down;
    prec_t *points;
    uint64_t exor, contrib;
    sprig_edge_t *next_child, *next_parent;
    bool tombstone;
    bool journaled; /* added or hashes saved in the open journal */
};

/* One step of the undo journal: what sprig_tree_rollback removes or puts back. */
typedef enum {
    J_STRING,     /* item: an interned string (a: its hash) */
    J_NODE,       /* item: a new node; where: the last node before it */
    J_EDGE,       /* item: a new edge (the head of its up's and down's lists) */
    J_NODE_POINT, /* item: a new point of node `where`; tail: that node's last before */
    J_EDGE_POINT, /* item: a new point of edge `where` (the head of its list) */
    J_POINT,      /* item: a changed point; old: its fields before (old.p.text owned) */
    J_NODE_HASH,  /* item: a node; a, b: its own and sub before */
    J_EDGE_HASH,  /* item: an edge; a, b: its exor and contrib before; tombstone */
} jkind_t;

typedef struct jent {
    jkind_t kind;
    bool tombstone;
    void *item, *where;
    struct prec *tail;
    struct prec old;
    uint64_t a, b;
} jent_t;

struct sprig_tree {
    tree__map_t nodes, points, strings;
    sprig_node_t *first, *last, *root;
    size_t node_count, point_count;
    sprig_tree_local_fn local_fn;
    void *local_arg;
    bool deferred;
    unsigned mark;
    sprig_node_t **work; /* worklist of hash propagation and walks */
    size_t work_len, work_cap;
    sprig_node_t **ready; /* propagate's nodes whose children are done */
    size_t ready_len, ready_cap;
    jent_t *journal; /* the undo journal, while `journaling` */
    size_t jlen, jcap;
    bool journaling;
};

/* The text of a point without one: a text is freed only when it is not this. */
extern const char tree__empty_text[];
/* Frees a list of point records, their texts too. */
void tree__free_points(prec_t *r);
/* The hash of r's (owner, type, key) in the map of node points. */
uint64_t tree__prec_hash(const prec_t *r);

/* Pushes n on the tree's worklist (tree_walk.c); 0 or -ENOMEM. */
int tree__work_push(sprig_tree_t *t, sprig_node_t *n);

#endif
