/*
 * h2preface.h - the server's first HTTP/2 SETTINGS frame, rewritten so that it does not offer
 * WebSocket over HTTP/2.
 *
 * RFC 8441: a server that sends SETTINGS_ENABLE_CONNECT_PROTOCOL (0x8) = 1 invites clients to open
 * WebSockets as extended CONNECT streams on its HTTP/2 connection, and Chrome then does. The
 * gateway serves WebSocket on HTTP/1.1 only (ws.c refuses it on h2), and lws 4.1.6 writes 0x8 = 1
 * in every server preface with no setting to stop it (roles/h2/ops-h2.c lws_h2_stock_settings;
 * vhost http2_settings[] reaches ids 1..5 only). h2settings.c rewrites that frame on its way into
 * OpenSSL with this: the parameter stays (the frame keeps its length) with the value 0, and a
 * client then opens its WebSockets on a separate HTTP/1.1 connection.
 *
 * Pure code over a byte buffer, no lws, no OpenSSL: any thread, and a fuzz target drives it.
 */
#ifndef GW_H2PREFACE_H
#define GW_H2PREFACE_H

#include <stddef.h>
#include <stdint.h>

#define GW_H2_FRAME_HEADER 9                  /* length(3) type(1) flags(1) stream id(4) */
#define GW_H2_FRAME_SETTINGS 0x4
#define GW_H2_FLAG_ACK 0x1
#define GW_H2_SETTING_LEN 6                   /* id(2) value(4) */
#define GW_H2_SETTINGS_ENABLE_CONNECT_PROTOCOL 0x8

/**
 * @brief Does @p buf start with a whole SETTINGS frame that offers extended CONNECT? The frame must
 *        be of type SETTINGS, without the ACK flag, on stream 0, with a payload of whole 6-byte
 *        parameters, all within @p len; bytes after it are not looked at.
 * @return -1 when @p buf does not start with such a frame; else how many of its
 *         SETTINGS_ENABLE_CONNECT_PROTOCOL parameters have a value other than 0 (0: none).
 */
int gw_h2_preface_scan(const uint8_t *buf, size_t len);

/**
 * @brief The same check, and the value of every SETTINGS_ENABLE_CONNECT_PROTOCOL parameter of
 *        that frame set to 0, in place. No other byte changes (the length stays).
 * @return what gw_h2_preface_scan() returned before the change: -1 (nothing changed) or the
 *         number of parameters changed.
 */
int gw_h2_preface_no_connect(uint8_t *buf, size_t len);

#endif /* GW_H2PREFACE_H */
