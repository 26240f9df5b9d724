/* libpq, loaded when the first PostgreSQL store opens rather than linked (dl.h): a
 * gateway on SQLite never maps it, nor the OpenSSL, Kerberos and LDAP libraries it links
 * (2.6 MB resident just by being loaded). Each entry has the type of the function it
 * stands for, checked against libpq-fe.h. */
#ifndef SPRIG_STORE_PQ_H
#define SPRIG_STORE_PQ_H

#include <libpq-fe.h>

#define SPRIG_PQ_SONAME "libpq.so.5"

typedef struct sprig_pq {
    __typeof__(PQconnectdbParams) *connectdbParams;
    __typeof__(PQstatus) *status;
    __typeof__(PQerrorMessage) *errorMessage;
    __typeof__(PQfinish) *finish;
    __typeof__(PQreset) *reset;
    __typeof__(PQexec) *exec;
    __typeof__(PQexecParams) *execParams;
    __typeof__(PQsendQueryParams) *sendQueryParams;
    __typeof__(PQsetSingleRowMode) *setSingleRowMode;
    __typeof__(PQgetResult) *getResult;
    __typeof__(PQresultStatus) *resultStatus;
    __typeof__(PQresultErrorField) *resultErrorField;
    __typeof__(PQntuples) *ntuples;
    __typeof__(PQgetvalue) *getvalue;
    __typeof__(PQgetisnull) *getisnull;
    __typeof__(PQcmdTuples) *cmdTuples;
    __typeof__(PQclear) *clear;
    __typeof__(PQputCopyData) *putCopyData;
    __typeof__(PQputCopyEnd) *putCopyEnd;
} sprig_pq_t;

/* libpq's functions; set by store__pq_load. */
extern sprig_pq_t store__pq;

/* Loads libpq once per process; later calls return 0 at once. 0, or -ENOENT with the
 * library, why and what to install in why. */
int store__pq_load(char *why, size_t n);

#endif
